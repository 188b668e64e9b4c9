"""A SIS's placeholder dates (0001-01-01, 9999-12-31: real ISO dates, but no enrollment's or school day's) neither
stop a run nor change a file: the enrollment is held back with its reason, the calendar day counts as none.

The district of tests/integration/small_district.py, plus:
- student 13 at school A from Sep 2 with EXITDATE '9999-12-31' (a "no end" placeholder): its SENR Local Record ID
  is 13.100.20250902, its STAS one 13.100; neither is published, both are listed as an enrollment date that is
  not a date;
- school A's CALENDAR_DAY holds two more in-session rows, 0001-01-01 and 9999-12-31: no student's day count or
  exit date moves, so the files of the other students are the files of the district without them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.extracts import not_extracted as ne
from calpads.extracts.enrollment import enrollment_last_days, in_session_counts
from tests.integration.small_district import CDS_A, A, build_sis
from tests.integration.test_not_extracted_reasons import run

PLACEHOLDERS = ("0001-01-01", "9999-12-31")


def _sis(path: Path, placeholders: bool) -> sa.Engine:
    eng = sa.create_engine(f"sqlite:///{path}")
    district = build_sis(eng)
    if placeholders:
        district.add_student(13, first="Mo", last="Ng", school=A, entry="2025-09-02")
        with eng.begin() as c:
            c.exec_driver_sql("UPDATE STUDENTS SET EXITDATE = '9999-12-31' WHERE ID = 13")
            for i, day in enumerate(PLACEHOLDERS):
                c.exec_driver_sql("INSERT INTO CALENDAR_DAY (ID, SCHOOLID, DATE_VALUE, INSESSION) VALUES (?, ?, ?, 1)",
                                  (90_000 + i, A, day))
    return eng


def _run(tmp_path: Path, sis: sa.Engine, record_type: str) -> Path:
    (tmp_path / "pub").mkdir(parents=True, exist_ok=True)
    return run(tmp_path, sis, record_type)


def _lines(folder: Path, record_type: str) -> list[str]:
    return sorted((folder / f"{record_type}_1234567_2025-2026.txt").read_text().splitlines())


def _not_extracted(folder: Path) -> set[tuple[str, str, str, str]]:
    with (folder / "report" / "not_extracted.csv").open(newline="") as fh:
        return {(r["local_record_id"], r["local_student_id"], r["school_of_attendance"], r["reason"])
                for r in csv.DictReader(fh)}


@pytest.mark.parametrize(("record_type", "record_id"), [("SENR", "13.100.20250902"), ("STAS", "13.100")])
def test_placeholder_exit_is_held_back_and_placeholder_days_change_nothing(tmp_path, record_type, record_id):
    clean = _run(tmp_path / "clean", _sis(tmp_path / "clean.db", placeholders=False), record_type)
    dirty = _run(tmp_path / "dirty", _sis(tmp_path / "dirty.db", placeholders=True), record_type)
    assert _lines(dirty, record_type) == _lines(clean, record_type)
    assert _not_extracted(dirty) - _not_extracted(clean) == {(record_id, "100013", CDS_A, ne.BAD_ENROLLMENT_DATES)}


def test_enrollment_days_ignore_placeholder_dates():
    calendar = pd.DataFrame({"schoolid": [A] * 5,
                             "date_value": ["2025-09-02", "2025-09-03", "2025-09-05", *PLACEHOLDERS]})
    enrollments = pd.DataFrame({"schoolid": [A] * 4, "exitdate": ["2025-09-05", "9999-12-31", "0001-01-01", None]})
    last = enrollment_last_days(enrollments, calendar)
    # exit Sep 5 (exclusive): the last in-session day before it is Sep 3; a placeholder exit is no exit
    assert list(last) == [pd.Timestamp("2025-09-03"), pd.NaT, pd.NaT, pd.NaT]
    first = pd.Series(pd.to_datetime(["2025-09-01", "2025-09-03"]))
    through = pd.Series(pd.to_datetime(["2025-09-30", "2025-09-30"]))
    assert list(in_session_counts(calendar, pd.Series([A, A]), first, through)) == [3, 2]
