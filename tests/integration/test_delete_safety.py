"""A bad night never sends a wrong delete: SIS typos after a saved submission, records the SIS still has,
deletes of students still enrolled, duplicate operational keys -- through the real pipeline stages on a
hand-made SQLite SIS (dates typed as text, as a SQLite SIS keeps them), with SQLite and PostgreSQL stores.

Expected values are worked out from the rows below and the rules (seed + docs/rules.md):
six students at school 100 (CDS 7654321), one program each: Local Record ID "<STUDENTS.ID>.<program ID>",
Local Student ID 100000 + id; ten more students with program 192 keep every run's deletes under the 20%
mass-delete share (2 of 16). The first run saves all 16; every later run is compared with it.
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
from calpads.history.guard import KEY_CHANGED, EnrolledDeleteBlocked
from calpads.history.store import HistoryStore
from calpads.run_scope import RunScope
from tests.integration.test_history_sequence import YEAR, delete_programs, lines, sent
from tests.unit.sis_fixtures import LEA, Sis

A = "7654321"
PROGRAMS = {1: "101", 2: "191", 3: "101", 4: "191", 5: "101", 6: "191",   # student -> program (id 500 + student)
            **{sid: "192" for sid in range(7, 17)}}


def run(tmp_path: Path, sis: sa.Engine, store: sa.Engine, run_id: str, **params) -> Path:
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, "save_history": True, **params},
                                 today=date(2026, 5, 1))
    ctx = pipeline.RunContext("SPRG", "calpads_sprg", run_id, scope, tmp_path / "work" / run_id, tmp_path / "pub")
    pipeline.extract(ctx, sis)
    pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.9)
    pipeline.diff(ctx, store)
    pipeline.publish(ctx)
    pipeline.save_history(ctx, store)
    return Path(str(ctx.run_folder))


def make_sis(path: Path) -> Sis:
    sis = Sis(sa.create_engine(f"sqlite:///{path}"))
    sis.add_school(100, A)
    for sid, code in PROGRAMS.items():
        sis.add_student(sid, first=f"First{sid}", last=f"Last{sid}")
        sis.add_program(sid, 100, code, start="2025-09-02", program_id=500 + sid)
    return sis


def sql(sis: Sis, statement: str, *params: object) -> None:
    """A raw update, as a typo in the SIS's own screens would store it (SQLite keeps any text in a DATE)."""
    with sis.engine.begin() as c:
        c.exec_driver_sql(statement, params)


def csv_rows(folder: Path, name: str) -> list[dict[str, str]]:
    path = folder / "report" / name
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def reported(folder: Path) -> dict[str, set[str]]:
    """Local Record ID -> the rule ids (findings.csv) and reasons (not_extracted.csv) that name it."""
    out: dict[str, set[str]] = {}
    for r in csv_rows(folder, "findings.csv"):
        out.setdefault(r["local_record_id"], set()).add(r["rule_id"])
    for r in csv_rows(folder, "not_extracted.csv"):
        out.setdefault(r["local_record_id"], set()).add(r["reason"])
    return out


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_five_sis_typos_give_five_findings_and_no_delete(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    first = run(tmp_path, sis.engine, store_engine, "r1")
    assert sorted(rid for _, rid in sent(first)) == sorted(f"{sid}.{500 + sid}" for sid in PROGRAMS)

    sql(sis, "UPDATE STUDENTS SET STATE_STUDENTNUMBER = NULL WHERE ID = 1")            # SSID removed
    sql(sis, "UPDATE STUDENTS SET STATE_STUDENTNUMBER = '   ' WHERE ID = 2")           # SSID blanked with spaces
    sql(sis, "UPDATE STUDENTS SET ENTRYDATE = 'not a date' WHERE ID = 3")              # enrollment date typo
    sql(sis, "UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMSTARTDATE = '31/12/2025' WHERE ID = 504")
    sql(sis, "UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMSTARTDATE = '2025-02-30' WHERE ID = 505")
    second = run(tmp_path, sis.engine, store_engine, "r2")

    # Nothing to send: the five records are still in the SIS (held back or not extracted), the sixth is unchanged.
    assert sent(second) == [] and lines(second, "_D") == []
    assert manifest(second)["counts"]["deletes"] == 0
    assert manifest(second)["counts"]["diff"]["deletes"]["kept_because_still_in_sis"] == 5
    # Each typo is reported once, on its record, with its rule or reason (seed: a blank SSID is not extracted;
    # an unreadable date is held back by the rule on that date).
    assert reported(second) == {
        "1.501": {ne.NO_SSID},
        "2.502": {ne.NO_SSID},
        "3.503": {"SPRG-ENROLLMENT-DATE"},
        "4.504": {"SPRG.3.15.format"},
        "5.505": {"SPRG.3.15.format"},
    }
    validation = manifest(second)["validation"]
    assert validation["records_held_back"] == 3
    assert validation["not_extracted"] == 2 and validation["not_extracted_by_reason"] == {ne.NO_SSID: 2}
    index = (second / "report" / "index.html").read_text()
    assert "Not extracted (2)" in index and "1.501" in index
    for student_data in ("First1", "Last1", "1000000001", "2015"):      # names, SSID, birth year
        assert student_data not in (second / "report" / "not_extracted.csv").read_text()

    # Fixed in the SIS: every record equals what was submitted in r1, so nothing is sent either.
    sql(sis, "UPDATE STUDENTS SET STATE_STUDENTNUMBER = '1000000001' WHERE ID = 1")
    sql(sis, "UPDATE STUDENTS SET STATE_STUDENTNUMBER = '1000000002' WHERE ID = 2")
    sql(sis, "UPDATE STUDENTS SET ENTRYDATE = '2025-08-13' WHERE ID = 3")
    sql(sis, "UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMSTARTDATE = '2025-09-02' WHERE ID IN (504, 505)")
    assert sent(run(tmp_path, sis.engine, store_engine, "r3")) == []
    assert [r.delete_count for r in HistoryStore(store_engine).runs("SPRG").itertuples()] == [0, 0, 0]


def test_a_program_without_an_enrollment_in_range_is_listed_and_not_deleted(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    run(tmp_path, sis.engine, store_engine, "r1")
    # A typo in a real date: the enrollment now starts after the report end (2026-06-30), so the student has no
    # enrollment in the range and the SQL selection leaves the enrollment out.
    sql(sis, "UPDATE STUDENTS SET ENTRYDATE = '2026-08-13' WHERE ID = 6")
    second = run(tmp_path, sis.engine, store_engine, "r2")
    assert sent(second) == []
    assert reported(second) == {"6.506": {ne.NO_ENROLLMENT}}


def test_a_delete_of_an_enrolled_student_needs_allow_enrolled_deletes(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    run(tmp_path, sis.engine, store_engine, "r1")
    # Student 6's program row is removed (by mistake?) while the student is still enrolled; student 5's start
    # date is corrected to another real date (an operational key: the old key's D + an add of the new).
    delete_programs(sis, 506)
    sql(sis, "UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMSTARTDATE = '2025-09-03' WHERE ID = 505")
    with pytest.raises(EnrolledDeleteBlocked) as info:
        run(tmp_path, sis.engine, store_engine, "r2")
    message = str(info.value)
    assert "would delete 2 record(s) of students who are still enrolled" in message
    assert "6.506 (Local Student ID 100006, program 191 at school 7654321: no longer extracted" in message
    assert f"5.505 (Local Student ID 100005, program 101 at school 7654321: {KEY_CHANGED}" in message
    assert "allow_enrolled_deletes: true" in message
    for student_data in ("First5", "Last6", "1000000005", "1000000006"):
        assert student_data not in message
    folder = tmp_path / "pub" / YEAR / "SPRG" / "r2"
    assert not list(folder.glob("*.txt")) and not (folder / "manifest.json").exists()
    listed = {r["local_record_id"]: (r["why"], r["student_still_enrolled"]) for r in csv_rows(folder, "deletes.csv")}
    assert listed == {"5.505": (KEY_CHANGED, "Y"), "6.506": ("no longer extracted from the SIS", "Y")}
    assert "program" in (folder / "report" / "deletes.html").read_text()
    assert [r.run_id for r in HistoryStore(store_engine).runs("SPRG").itertuples()] == ["r1"]

    allowed = run(tmp_path, sis.engine, store_engine, "r2", allow_enrolled_deletes=True)
    # 5.505: D of the 0902 key (as submitted) before the add of the 0903 one; 6.506: D. Sorted by last name.
    assert [(r[1], r[2], r[14]) for r in lines(allowed)] == [("D", "5.505", "20250902"), ("", "5.505", "20250903"),
                                                            ("D", "6.506", "20250902")]
    assert manifest(allowed)["counts"]["diff"]["deletes"] == {
        "count": 2, "by_program": {"101": 1, "191": 1}, "by_school": {A: 2}, "of_enrolled_students": 2,
        "key_changes": 1, "kept_because_still_in_sis": 0, "allow_enrolled_deletes": True}


def test_a_delete_of_a_student_who_left_needs_no_param(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    run(tmp_path, sis.engine, store_engine, "r1")
    # Student 4's enrollment is corrected to last school year (left 2025-06-01, before this year's July 1) and
    # the program row removed: the student is not enrolled in the range, so the D goes out without the param.
    delete_programs(sis, 504)
    sql(sis, "UPDATE STUDENTS SET ENTRYDATE = '2024-08-14', EXITDATE = '2025-06-01' WHERE ID = 4")
    second = run(tmp_path, sis.engine, store_engine, "r2")
    assert [(t, rid) for t, rid in sent(second)] == [("D", "4.504")]
    assert {r["local_record_id"]: r["student_still_enrolled"] for r in csv_rows(second, "deletes.csv")} == {
        "4.504": "N"}


def test_duplicate_operational_keys_are_held_back_and_both_listed(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    run(tmp_path, sis.engine, store_engine, "r1")
    # A second 191 row for student 6, same school and start date: the same operational key twice.
    sis.add_program(6, 100, "191", start="2025-09-02", program_id=599)
    second = run(tmp_path, sis.engine, store_engine, "r2")
    assert sent(second) == [] and not (second / f"SPRG_{LEA}_{YEAR}_AU2.txt").exists()
    assert reported(second) == {"6.506": {"SPRG-DUPLICATE-KEY"}, "6.599": {"SPRG-DUPLICATE-KEY"}}


def test_a_title_i_service_date_typo_is_listed_and_not_deleted(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    # Student 6 also has Title I (122, program row 600) with one service (code 05) in the range: record 6.600.05.
    sis.add_program(6, 100, "122", start="2025-09-02", program_id=600)
    service = sis.add_service(6, 100, "05", "2025-10-01")
    assert ("", "6.600.05") in sent(run(tmp_path, sis.engine, store_engine, "r1"))
    sql(sis, "UPDATE S_CA_CALPADS_STUDENTSERVICES_C SET SERVICEDATE = '10/01/2025' WHERE ID = ?", service)
    second = run(tmp_path, sis.engine, store_engine, "r2")
    assert sent(second) == []
    assert reported(second) == {"6.600.05": {ne.BAD_SERVICE_DATE}}


def test_a_record_kept_from_a_delete_still_counts_as_submitted(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    # Student 6's Title I membership has a good service (05) and a bad one (99, not 05-13: SPRG-SERVICE-122).
    sis.add_program(6, 100, "122", start="2025-09-02", program_id=600)
    sis.add_service(6, 100, "05", "2025-10-01")
    sis.add_service(6, 100, "99", "2025-10-02")
    first = run(tmp_path, sis.engine, store_engine, "r1")
    assert ("", "6.600.05") in sent(first) and reported(first) == {"6.600.99": {"SPRG-SERVICE-122"}}
    # Nothing changed: 6.600.05 was submitted and is the same. The held-back 6.600.99 shares its student and
    # program (record identity), which keeps 6.600.05 from a delete -- but must not make it look new.
    assert sent(run(tmp_path, sis.engine, store_engine, "r2")) == []
