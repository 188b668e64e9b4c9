"""Every student who is not sent has a true reason (SENR, STAS, LEAP), counted in the manifest and the report.

The district of tests/integration/small_district.py (September 2025, schools A = 100 / CDS 1111111 and
B = 200 / 2222222; student 5 has no SSID) plus, at school A for the whole month:
- 8: excluded from state reporting, registered for ELO-P on the afterschool platform;
- 9: an SSID of spaces;
- 10: ENTRYDATE 'not a date' (SQLite keeps any text in a DATE column);
- 11: ENTRYDATE '2025-09-31' (shaped like a date, but September has 30 days);
- 12: EXITDATE '2025-09-31' (an unreadable exit must not pass for an open enrollment);
- 7 (already enrolled at A): an earlier enrollment at B, Sep 2 - 5, excluded from state reporting.
Expected rows are worked out from those rows: SENR's Local Record ID is STUDENTS.ID.school number.entry date,
STAS's STUDENTS.ID.school number; LEAP names unlinked afterschool rows by student number.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.extracts import not_extracted as ne
from calpads.run_scope import RunScope
from tests.integration.small_district import CDS_A, CDS_B, A, B, build_sis, stage_afterschool


@pytest.fixture
def sis(tmp_path, monkeypatch) -> sa.Engine:
    eng = sa.create_engine(f"sqlite:///{tmp_path}/sis.db")
    district = build_sis(eng)
    district.add_student(8, first="Hal", last="Hill", school=A, entry="2025-09-02", excluded=True)
    district.add_student(9, first="Ivy", last="Ito", school=A, entry="2025-09-02", ssid="   ")
    district.add_student(10, first="Jo", last="Jay", school=A, entry="2025-09-02")
    district.add_student(11, first="Kim", last="Ko", school=A, entry="2025-09-02")
    district.add_student(12, first="Lu", last="Lee", school=A, entry="2025-09-02")
    district.add_reenrollment(7, B, "2025-09-02", "2025-09-06", excluded=True)
    with eng.begin() as c:
        c.exec_driver_sql("UPDATE STUDENTS SET ENTRYDATE = 'not a date' WHERE ID = 10")
        c.exec_driver_sql("UPDATE STUDENTS SET ENTRYDATE = '2025-09-31' WHERE ID = 11")
        c.exec_driver_sql("UPDATE STUDENTS SET EXITDATE = '2025-09-31' WHERE ID = 12")
    # afterschool_sync has staged the export, with a registration of the excluded student 8
    stage_afterschool(eng, sa.create_engine(f"sqlite:///{tmp_path}/store.db"), tmp_path / "afterschool",
                      extra_registrations=("100008,,ELO-P,2025-08-25",))
    return eng


def run(tmp_path: Path, sis: sa.Engine, record_type: str) -> Path:
    scope = RunScope.from_params(record_type, {"academic_year": "2025-2026"}, today=date(2026, 6, 20))
    ctx = pipeline.RunContext(record_type, f"calpads_{record_type.lower()}", "manual__t", scope,
                              tmp_path / "work" / record_type, tmp_path / "pub")
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    pipeline.extract(ctx, sis, store_engine=store)
    pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)
    pipeline.diff(ctx, store)
    pipeline.publish(ctx)
    return Path(str(ctx.run_folder))


def not_extracted(folder: Path) -> list[tuple[str, str, str, str]]:
    with (folder / "report" / "not_extracted.csv").open(newline="") as fh:
        return sorted((r["local_record_id"], r["local_student_id"], r["school_of_attendance"], r["reason"])
                      for r in csv.DictReader(fh))


def test_senr_lists_each_enrollment_left_out_with_its_reason(tmp_path, sis):
    folder = run(tmp_path, sis, "SENR")
    assert not_extracted(folder) == [
        ("10.100.not a date", "100010", CDS_A, ne.BAD_ENROLLMENT_DATES),   # the date as the SIS holds it
        ("11.100.20250931", "100011", CDS_A, ne.BAD_ENROLLMENT_DATES),
        ("12.100.20250902", "100012", CDS_A, ne.BAD_ENROLLMENT_DATES),
        ("5.100.20250902", "100005", CDS_A, ne.NO_SSID),
        ("7.200.20250902", "100007", CDS_B, ne.ENROLLMENT_EXCLUDED),
        ("8.100.20250902", "100008", CDS_A, ne.EXCLUDED),
        ("9.100.20250902", "100009", CDS_A, ne.NO_SSID),
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["validation"]["not_extracted"] == 7
    assert manifest["validation"]["not_extracted_by_reason"] == {
        ne.BAD_ENROLLMENT_DATES: 3, ne.NO_SSID: 2, ne.ENROLLMENT_EXCLUDED: 1, ne.EXCLUDED: 1}
    index = (folder / "report" / "index.html").read_text()
    assert "Not extracted (7)" in index and "no SSID yet" in index
    published = {ln.split("^")[2] for ln in (folder / "SENR_1234567_2025-2026.txt").read_text().splitlines()}
    assert not published & {r[0] for r in not_extracted(folder)}          # listed or published, never both


def test_stas_lists_each_student_school_left_out_with_its_reason(tmp_path, sis):
    folder = run(tmp_path, sis, "STAS")
    published = {ln.split("^")[2] for ln in (folder / "STAS_1234567_2025-2026.txt").read_text().splitlines()}
    assert not published & {r[0] for r in not_extracted(folder)}          # listed or published, never both
    assert not_extracted(folder) == [
        ("10.100", "100010", CDS_A, ne.BAD_ENROLLMENT_DATES),
        ("11.100", "100011", CDS_A, ne.BAD_ENROLLMENT_DATES),
        ("12.100", "100012", CDS_A, ne.BAD_ENROLLMENT_DATES),
        ("5.100", "100005", CDS_A, ne.NO_SSID),
        ("7.200", "100007", CDS_B, ne.ENROLLMENT_EXCLUDED),
        ("8.100", "100008", CDS_A, ne.EXCLUDED),
        ("9.100", "100009", CDS_A, ne.NO_SSID),
    ]


def test_leap_names_an_excluded_student_instead_of_an_unknown_one(tmp_path, sis):
    rows = {(r[1], r[3]) for r in not_extracted(run(tmp_path, sis, "LEAP"))}
    assert ("100008", f"1 registration(s) for {ne.UNKNOWN_BECAUSE['excluded']}") in rows
    # 999999 is in no SIS table: the afterschool import held it back, and its words stay; 100005 (no SSID) keeps
    # its own row
    assert ("999999", "1 registration(s) held back by the afterschool import (ASR-KNOWN-STUDENT): not counted until "
                      "corrected in the afterschool platform") in rows
    assert ("100005", "1 registration(s) for a student without an SSID in the SIS") in rows
