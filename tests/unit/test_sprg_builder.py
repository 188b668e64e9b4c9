"""SPRG builder (calpads.extracts.sprg.extract_sprg) against hand-made SIS databases.

Every expected record below was worked out by hand from the seed
(shared/seeds/powerschool-student-program-records.txt) and the contract
(shared/contracts/README.md §2, §4), never copied from the builder's output.
Dates: PowerSchool's EXITDATE is exclusive; an enrollment's last day is the last
in-session day on or before EXITDATE - 1 (contract §4).

Calendar of schools A and B (sis_fixtures defaults): 2025-08-13 (Wed) .. 2026-06-04 (Thu),
weekends off, holidays 2025-09-01, 2025-12-22 .. 2026-01-02 (winter break), 2026-02-16.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.run_scope import RunScope
from tests.unit.sis_fixtures import Sis, number_of, ssid_of

A, CDS_A = 100, "0111111"  # sub-district North
B, CDS_B = 200, "0222222"  # sub-district South
C, CDS_C = 300, "0333333"  # added by the tests that need it
YEAR = "2025-2026"
LEA = "1234567"

COLUMNS = (
    "record_type", "transaction_type", "local_record_id", "reporting_lea", "school_of_attendance",
    "academic_year_id", "ssid", "local_student_id", "legal_first_name", "legal_last_name", "birth_date",
    "gender_code", "program_code", "membership_code", "membership_start_date", "membership_end_date",
    "service_academic_year", "service_code", "cpa_id", "migrant_id", "primary_disability_code", "dsea",
    "homeless_dwelling_type", "unaccompanied_youth", "runaway_youth",
)
CTX_COLUMNS = (
    "ctx_student_id", "ctx_program_id", "ctx_preferred_gender", "ctx_legal_gender", "ctx_sped_exit_code",
    "ctx_enrolled_at_school", "ctx_enrollment_covers_range", "ctx_enrollment_exit_date",
    "ctx_primary_residence_category",
)


# -- helpers --------------------------------------------------------------------------
@pytest.fixture
def sis(tmp_path) -> Iterator[Sis]:
    """A SQLite SIS with PREFS districtnumber 1234567 and schools A (North) and B (South)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sis.db'}")
    db = Sis(engine)
    db.add_school(A, CDS_A, subdistrict="North")
    db.add_school(B, CDS_B, subdistrict="South")
    yield db
    engine.dispose()


@pytest.fixture
def pg_sis(pg_database) -> Iterator[Sis]:
    engine = sa.create_engine(pg_database)
    db = Sis(engine)
    db.add_school(A, CDS_A, subdistrict="North")
    db.add_school(B, CDS_B, subdistrict="South")
    yield db
    engine.dispose()


def run(sis: Sis, **params: Any) -> pd.DataFrame:
    from calpads.extracts.sprg import extract_sprg

    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, **params}, today=date(2026, 5, 1))
    return extract_sprg(sis.engine, scope)


def records(df: pd.DataFrame) -> set[tuple]:
    return set(df[list(COLUMNS)].itertuples(index=False, name=None))


def ids(df: pd.DataFrame) -> set[str]:
    return set(df["local_record_id"])


def row(df: pd.DataFrame, local_record_id: str) -> dict[str, Any]:
    rows = df[df["local_record_id"] == local_record_id]
    assert len(rows) == 1, f"expected one record {local_record_id}, got {len(rows)}"
    return rows.iloc[0].to_dict()


def rec(
    student: int, program: int, cds: str, code: str, start: str, end: str | None = None, *,
    membership: str = "3", service: str | None = None, service_year: str | None = None,
    first: str = "Ana", last: str = "Lopez", dob: str = "20150314", gender: str = "F",
    cpa: str | None = None, migrant: str | None = None, disability: str | None = None, dsea: str | None = None,
    dwelling: str | None = None, unaccompanied: str | None = None, runaway: str | None = None,
) -> tuple:
    """An expected record of a sis_fixtures default student (SSID ssid_of(id), number number_of(id))."""
    lrid = f"{student}.{program}" + (f".{service}" if service is not None else "")
    return ("SPRG", None, lrid, LEA, cds, YEAR, ssid_of(student), number_of(student), first, last, dob, gender,
            code, membership, start, end, service_year, service, cpa, migrant, disability, dsea,
            dwelling, unaccompanied, runaway)


# -- shape -----------------------------------------------------------------------------
def test_columns_are_the_layout_then_ctx_and_values_are_str_or_none(sis):
    sis.add_student(1)
    sis.add_program(1, A, "191", program_id=501)
    df = run(sis)
    assert tuple(df.columns[:25]) == COLUMNS
    assert all(c.startswith("ctx_") for c in df.columns[25:])
    assert set(CTX_COLUMNS) <= set(df.columns)
    for col in df.columns:
        for v in df[col]:
            assert v is None or isinstance(v, str), (col, v)
    assert list(df["transaction_type"]) == [None]
    assert list(df["ctx_primary_residence_category"]) == [None]


def test_empty_database_gives_empty_frame_with_the_columns(sis):
    df = run(sis)
    assert len(df) == 0
    assert tuple(df.columns[:25]) == COLUMNS


# -- fields ----------------------------------------------------------------------------
def test_all_fields_of_plain_records(sis):
    # A school-level districtnumber must not win: 3.04 is the district-level PREFS row (SCHOOLID 0).
    sis.add_pref("districtnumber", "7777777", school=B)
    sis.add_student(7, number="S-0007", ssid="2000000007", first="Pat", last="Kim", dob="2014-11-02",
                    gender="M", school=B)
    sis.add_program(7, B, "191", program_id=901, start="2025-09-15", dwelling="120", unaccompanied="Y",
                    runaway="N")
    sis.add_program(7, B, "113", program_id=902, start="2025-08-20", cpa="A1234")
    # Migrant id, disability and DSEA on a 101 are kept as stored: the gate, not the builder, polices them.
    sis.add_program(7, B, "101", program_id=903, membership="1", start="2025-10-06", end="2026-03-20",
                    migrant="0612345678", disability="210", dsea="7654321")
    df = run(sis, submission="eoy2")
    assert records(df) == {
        ("SPRG", None, "7.901", "1234567", "0222222", "2025-2026", "2000000007", "S-0007", "Pat", "Kim",
         "20141102", "M", "191", "3", "20250915", None, None, None, None, None, None, None, "120", "Y", "N"),
        ("SPRG", None, "7.902", "1234567", "0222222", "2025-2026", "2000000007", "S-0007", "Pat", "Kim",
         "20141102", "M", "113", "3", "20250820", None, None, None, "A1234", None, None, None, None, None, None),
        ("SPRG", None, "7.903", "1234567", "0222222", "2025-2026", "2000000007", "S-0007", "Pat", "Kim",
         "20141102", "M", "101", "1", "20251006", "20260320", None, None, None, "0612345678", "210", "7654321",
         None, None, None),
    }


@pytest.mark.parametrize("student, first, last, gender, ctx_legal", [
    (dict(first="Mia", last="Gar", gender="X", legal_first="Maria", legal_last="Garcia", legal_gender="F"),
     "Maria", "Garcia", "F", "F"),
    (dict(first="Mia", last="Gar", gender="F", legal_first="Maria"), "Maria", "Gar", "F", None),
    (dict(first="Mia", last="Gar", gender="F", legal_last="Garcia"), "Mia", "Garcia", "F", None),
    (dict(first="Mia", last="Gar", gender="M", ca_row=True), "Mia", "Gar", "M", None),
    (dict(first="Mia", last="Gar", gender="M"), "Mia", "Gar", "M", None),  # no S_CA_STU_X row at all
])
def test_legal_name_and_gender_override_the_preferred_ones_each_independently(sis, student, first, last, gender,
                                                                               ctx_legal):
    sis.add_student(1, **student)
    sis.add_program(1, A, "190", program_id=501)
    df = run(sis)
    assert records(df) == {rec(1, 501, CDS_A, "190", "20250813", first=first, last=last, gender=gender)}
    r = row(df, "1.501")
    assert (r["ctx_preferred_gender"], r["ctx_legal_gender"]) == (student["gender"], ctx_legal)


def test_blank_legal_values_do_not_override(sis):
    # Seed: "If populated, the student's legal name overrides" -- an empty string is not populated.
    sis.add_student(1, first="Mia", last="Gar", gender="M", legal_first="", legal_last="", legal_gender="")
    sis.add_program(1, A, "190", program_id=501)
    assert records(run(sis)) == {rec(1, 501, CDS_A, "190", "20250813", first="Mia", last="Gar", gender="M")}


def test_dsea_defaults_to_the_district_for_144_only(sis):
    sis.add_student(1)
    sis.add_program(1, A, "144", program_id=501, disability="210", dsea="7654321")
    sis.add_program(1, A, "144", program_id=502, disability="240", dsea=None)
    sis.add_program(1, A, "144", program_id=503, disability="240", dsea="")
    sis.add_program(1, A, "101", program_id=504, dsea=None)
    sis.add_program(1, A, "101", program_id=505, dsea="7654321")
    df = run(sis, submission="custom", programs=["144", "101"])
    assert records(df) == {
        rec(1, 501, CDS_A, "144", "20250813", disability="210", dsea="7654321"),
        rec(1, 502, CDS_A, "144", "20250813", disability="240", dsea="1234567"),
        rec(1, 503, CDS_A, "144", "20250813", disability="240", dsea="1234567"),
        rec(1, 504, CDS_A, "101", "20250813", dsea=None),
        rec(1, 505, CDS_A, "101", "20250813", dsea="7654321"),
    }


# -- student selection -------------------------------------------------------------------
def test_student_excluded_from_state_reporting_is_out(sis):
    # STUDENTS.STATE_EXCLUDEFROMREPORTING excludes the student, even with a reportable earlier enrollment.
    sis.add_student(1, excluded=True, entry="2025-10-01")
    sis.add_reenrollment(1, A, "2025-08-13", "2025-10-01")
    sis.add_program(1, A, "190", program_id=501)
    sis.add_student(2)
    sis.add_program(2, A, "190", program_id=502)
    assert records(run(sis)) == {rec(2, 502, CDS_A, "190", "20250813")}


def test_excluded_reenrollment_does_not_select_the_student(sis):
    # Report range = the fall; the current (STUDENTS) enrollment at B starts after it, so the
    # REENROLLMENTS row at A is the only candidate enrollment.
    for sid, excluded in ((1, True), (2, False)):
        sis.add_student(sid, school=B, entry="2026-01-05")
        sis.add_reenrollment(sid, A, "2025-08-13", "2025-10-01", excluded=excluded)
        sis.add_program(sid, A, "190", program_id=500 + sid)
    df = run(sis, start_date="2025-08-13", end_date="2025-12-19")
    # Student 2's A enrollment: EXITDATE 2025-10-01 -> last day Tue 2025-09-30, inside the range -> End Date.
    assert records(df) == {rec(2, 502, CDS_A, "190", "20250813", "20250930")}


def test_excluded_school(sis):
    sis.add_school(C, CDS_C, excluded=True)
    sis.add_student(1, school=C)  # enrolled only at the excluded school, program there
    sis.add_program(1, C, "190", program_id=501)
    # Enrolled only at the excluded school: no qualifying enrollment, so not even its A program is out.
    sis.add_student(2, school=C)
    sis.add_program(2, A, "190", program_id=502)
    sis.add_student(3, school=A)  # reportable student: the program at the excluded school is dropped
    sis.add_program(3, A, "190", program_id=503)
    sis.add_program(3, C, "191", program_id=504)
    assert records(run(sis)) == {rec(3, 503, CDS_A, "190", "20250813")}


def test_student_without_ssid_is_out(sis):
    sis.add_student(1, ssid=None)
    sis.add_program(1, A, "190", program_id=501)
    sis.add_student(2, ssid="")
    sis.add_program(2, A, "190", program_id=502)
    sis.add_student(3)
    sis.add_program(3, A, "190", program_id=503)
    assert records(run(sis)) == {rec(3, 503, CDS_A, "190", "20250813")}


def test_entry_after_report_end_is_out(sis):
    sis.add_student(1, entry="2026-02-02")
    sis.add_program(1, A, "190", program_id=501, start="2026-01-30")
    sis.add_student(2, entry="2026-01-30")  # entry on the end date: "on or before" -> in
    sis.add_program(2, A, "190", program_id=502, start="2026-01-30")
    sis.add_student(3, entry="2026-08-12", enroll_status=-1)  # pre-registered for next year
    sis.add_program(3, A, "190", program_id=503, start="2026-01-30")
    df = run(sis, end_date="2026-01-30")
    assert records(df) == {rec(2, 502, CDS_A, "190", "20260130")}


def test_exit_before_report_start_uses_the_last_in_session_day(sis):
    # Report starts Wed 2025-12-24, inside winter break.
    # Student 1: EXITDATE Mon 2026-01-05 -> EXITDATE-1 = Sun 01-04 -> back over the break -> last day
    # Fri 2025-12-19, not after the start -> out (a plain EXITDATE-1 = 2026-01-04 would wrongly keep it).
    sis.add_student(1, exit="2026-01-05")
    sis.add_program(1, A, "190", program_id=501)
    # Student 2: EXITDATE Tue 2026-01-06 -> last day Mon 2026-01-05 > start -> in; ended inside the range.
    sis.add_student(2, exit="2026-01-06")
    sis.add_program(2, A, "190", program_id=502)
    df = run(sis, start_date="2025-12-24")
    assert records(df) == {rec(2, 502, CDS_A, "190", "20250813", "20260105")}


def test_last_day_on_the_report_start_is_out(sis):
    # Seed: the exit date "must be blank, or after the report start date".
    sis.add_student(1, exit="2026-01-06")  # last day Mon 2026-01-05 = report start -> out
    sis.add_program(1, A, "190", program_id=501)
    sis.add_student(2, exit="2026-01-07")  # last day Tue 2026-01-06 -> in
    sis.add_program(2, A, "190", program_id=502)
    df = run(sis, start_date="2026-01-05")
    assert records(df) == {rec(2, 502, CDS_A, "190", "20250813", "20260106")}


# -- program selection -------------------------------------------------------------------
def test_program_start_must_be_on_or_before_report_end(sis):
    sis.add_student(1)
    sis.add_program(1, A, "190", program_id=501, start="2026-02-02")
    sis.add_program(1, A, "191", program_id=502, start="2026-01-30")
    assert records(run(sis, end_date="2026-01-30")) == {rec(1, 502, CDS_A, "191", "20260130")}


def test_program_end_must_be_blank_or_after_report_start(sis):
    sis.add_student(1)
    sis.add_program(1, A, "190", program_id=501, end="2025-12-19")
    sis.add_program(1, A, "190", program_id=502, end="2026-01-05")  # on the start date: not "after" -> out
    sis.add_program(1, A, "190", program_id=503, end="2026-01-06")
    sis.add_program(1, A, "191", program_id=504)
    df = run(sis, start_date="2026-01-05")
    assert records(df) == {
        rec(1, 503, CDS_A, "190", "20250813", "20260106"),
        rec(1, 504, CDS_A, "191", "20250813"),
    }


def test_blank_operational_keys_are_not_extracted(sis):
    sis.add_student(1)
    sis.add_program(1, A, None, program_id=501)
    sis.add_program(1, A, "", program_id=502)
    sis.add_program(1, A, "190", program_id=503, membership=None)
    sis.add_program(1, A, "190", program_id=504, membership="")
    sis.add_program(1, A, "190", program_id=505, start=None)
    sis.add_program(1, A, "190", program_id=506)
    assert records(run(sis)) == {rec(1, 506, CDS_A, "190", "20250813")}


ALL_CODES = ("101", "108", "113", "122", "127", "131", "135", "144", "162", "174", "175", "180", "181", "182",
             "185", "190", "191", "192")


@pytest.mark.parametrize("params, expected", [
    (dict(submission="fall1"), {"1.1127", "1.1135", "1.1181", "1.1182", "1.1190", "1.1191", "1.1192"}),
    (dict(submission="eoy2"), {"1.1101", "1.1108", "1.1113", "1.1122.05", "1.1162", "1.1174", "1.1180", "1.1190",
                               "1.1191", "1.1192"}),
    (dict(), {"1.1101", "1.1108", "1.1113", "1.1122.05", "1.1162", "1.1174", "1.1180", "1.1190", "1.1191",
              "1.1192"}),  # contract §2: submission defaults to eoy2
    # 144 is in neither fall1 nor eoy2, only custom; 185 (TK) never, even when asked for.
    (dict(submission="custom", programs=["131", "144", "175", "185"]), {"1.1131", "1.1144", "1.1175"}),
    (dict(submission="custom", programs=["185"]), set()),
    (dict(submission="custom", programs=["122"]), {"1.1122.05"}),
])
def test_program_sets(sis, params, expected):
    sis.add_student(1)
    for code in ALL_CODES:
        sis.add_program(1, A, code, program_id=1000 + int(code))
    sis.add_service(1, A, "05", "2025-10-01")
    assert ids(run(sis, **params)) == expected


# -- program 122 -------------------------------------------------------------------------
def test_122_one_record_per_distinct_service_code_in_range(sis):
    sis.add_student(1)
    sis.add_program(1, A, "122", program_id=501)
    sis.add_service(1, A, "05", "2025-10-01")  # before the range: ignored
    sis.add_service(1, A, "08", "2026-01-02")  # the day before the range: ignored
    sis.add_service(1, A, "06", "2026-01-05")  # on the start date: in
    sis.add_service(1, A, "06", "2026-03-02")  # same code again: still one record
    sis.add_service(1, A, "07", "2026-06-30")  # on the end date: in
    # Brief: services "at the program's school" (seed: school of attendance must match school of service).
    sis.add_service(1, B, "09", "2026-02-02")
    sis.add_service(1, A, None, "2026-02-02")  # blank service code = blank operational key: skipped
    sis.add_service(1, A, "", "2026-02-03")
    sis.add_service(1, A, "99", "2026-02-04")  # invalid but not blank: extracted, the gate reports it
    df = run(sis, start_date="2026-01-05", end_date="2026-06-30")
    assert records(df) == {
        rec(1, 501, CDS_A, "122", "20250813", service="06", service_year="2025-2026"),
        rec(1, 501, CDS_A, "122", "20250813", service="07", service_year="2025-2026"),
        rec(1, 501, CDS_A, "122", "20250813", service="99", service_year="2025-2026"),
    }
    assert set(df["ctx_program_id"]) == {"501"}


def test_122_without_usable_services_gives_no_record(sis):
    sis.add_student(2)
    sis.add_program(2, A, "122", program_id=502)
    sis.add_service(2, A, "05", "2025-10-01")  # only before the range
    sis.add_program(2, A, "190", program_id=505)  # the student's other programs are unaffected
    sis.add_student(3)
    sis.add_program(3, A, "122", program_id=503)
    sis.add_service(3, A, None, "2026-02-02")  # only a blank service code
    sis.add_student(4)
    sis.add_program(4, A, "122", program_id=504)  # no services at all
    df = run(sis, start_date="2026-01-05")
    assert records(df) == {rec(2, 505, CDS_A, "190", "20250813")}


# -- End Date (3.16) -----------------------------------------------------------------------
def test_end_date_from_own_end_or_enrollment_last_day(sis):
    # School C: only Presidents' Day (Mon 2026-02-16) off besides weekends.
    sis.add_school(C, CDS_C, holidays=["2026-02-16"])
    sis.add_student(1, school=C, exit="2026-02-17")  # -1 = Mon 02-16 holiday, Sun, Sat -> Fri 2026-02-13
    sis.add_program(1, C, "190", program_id=501)
    sis.add_student(2, school=C, exit="2026-02-16")  # -1 = Sun 02-15, Sat -> Fri 2026-02-13
    sis.add_program(2, C, "190", program_id=502)
    sis.add_student(3, school=C, exit="2026-03-05")  # -1 = Wed 2026-03-04, in session
    sis.add_program(3, C, "190", program_id=503)
    sis.add_student(4, school=C, exit="2026-02-17")  # own end date wins
    sis.add_program(4, C, "190", program_id=504, end="2025-11-14")
    sis.add_student(5, school=C)  # still enrolled -> blank
    sis.add_program(5, C, "190", program_id=505)
    sis.add_student(6, school=C, exit="2026-06-05")  # -1 = Thu 2026-06-04, the last school day
    sis.add_program(6, C, "190", program_id=506)
    df = run(sis)
    assert records(df) == {
        rec(1, 501, CDS_C, "190", "20250813", "20260213"),
        rec(2, 502, CDS_C, "190", "20250813", "20260213"),
        rec(3, 503, CDS_C, "190", "20250813", "20260304"),
        rec(4, 504, CDS_C, "190", "20250813", "20251114"),
        rec(5, 505, CDS_C, "190", "20250813"),
        rec(6, 506, CDS_C, "190", "20250813", "20260604"),
    }


def test_end_date_blank_when_the_enrollment_ends_after_the_report_end(sis):
    sis.add_student(1, exit="2026-03-03")  # last day Mon 2026-03-02, after the report end -> blank
    sis.add_program(1, A, "190", program_id=501)
    # EXITDATE Mon 2026-02-02 is after the report end, but the last day (Fri 2026-01-30) is not.
    # Contract §4: "when the student's enrollment ... ended inside the report range, the enrollment's last day".
    sis.add_student(2, exit="2026-02-02")
    sis.add_program(2, A, "190", program_id=502)
    df = run(sis, end_date="2026-01-30")
    assert records(df) == {
        rec(1, 501, CDS_A, "190", "20250813"),
        rec(2, 502, CDS_A, "190", "20250813", "20260130"),
    }
    # Brief: ctx_enrollment_exit_date is the latest enrollment's last day, even when 3.16 stays blank.
    assert row(df, "1.501")["ctx_enrollment_exit_date"] == "20260302"
    assert row(df, "2.502")["ctx_enrollment_exit_date"] == "20260130"


def test_144_end_date_only_with_a_sped_exit_code(sis):
    sis.add_student(1, exit="2026-03-05")
    sis.add_program(1, A, "144", program_id=501, disability="210")  # enrollment ended, no exit code -> blank
    sis.add_student(2)
    sis.add_program(2, A, "144", program_id=502, end="2026-01-15", disability="210")  # own end, no code -> blank
    sis.add_student(3)
    sis.add_program(3, A, "144", program_id=503, end="2026-01-15", disability="210", sped_exit="TC")
    sis.add_student(4, exit="2026-03-05")
    sis.add_program(4, A, "144", program_id=504, disability="210", sped_exit="TC")  # derived: Wed 2026-03-04
    df = run(sis, submission="custom", programs=["144"])
    assert records(df) == {
        rec(1, 501, CDS_A, "144", "20250813", None, disability="210", dsea="1234567"),
        rec(2, 502, CDS_A, "144", "20250813", None, disability="210", dsea="1234567"),
        rec(3, 503, CDS_A, "144", "20250813", "20260115", disability="210", dsea="1234567"),
        rec(4, 504, CDS_A, "144", "20250813", "20260304", disability="210", dsea="1234567"),
    }
    assert row(df, "3.503")["ctx_sped_exit_code"] == "TC"
    assert row(df, "1.501")["ctx_sped_exit_code"] is None


def test_end_date_follows_the_latest_enrollment_at_the_school(sis):
    # Student 1 left A (last day Tue 2025-09-30) and came back on 2025-10-15, still enrolled -> blank.
    sis.add_student(1, entry="2025-10-15")
    sis.add_reenrollment(1, A, "2025-08-13", "2025-10-01")
    sis.add_program(1, A, "190", program_id=501)
    # Student 2: the same, but the later enrollment ended: EXITDATE 2026-03-05 -> Wed 2026-03-04.
    sis.add_student(2, entry="2025-10-15", exit="2026-03-05")
    sis.add_reenrollment(2, A, "2025-08-13", "2025-10-01")
    sis.add_program(2, A, "190", program_id=502)
    # Student 3 left A for B; the A program starts after the A enrollment's last day, so no A enrollment
    # has last day >= the program start (brief) -> blank.
    sis.add_student(3, school=B, entry="2025-10-01")
    sis.add_reenrollment(3, A, "2025-08-13", "2025-10-01")
    sis.add_program(3, A, "190", program_id=503, start="2025-11-03")
    df = run(sis, start_date="2025-08-13")
    assert records(df) == {
        rec(1, 501, CDS_A, "190", "20250813"),
        rec(2, 502, CDS_A, "190", "20250813", "20260304"),
        rec(3, 503, CDS_A, "190", "20251103"),
    }
    r1 = row(df, "1.501")
    # Two enrollments at A with a gap: neither alone covers [2025-08-13, report end].
    assert (r1["ctx_enrolled_at_school"], r1["ctx_enrollment_covers_range"], r1["ctx_enrollment_exit_date"]) == (
        "Y", "N", None)
    r2 = row(df, "2.502")
    assert (r2["ctx_enrollment_covers_range"], r2["ctx_enrollment_exit_date"]) == ("N", "20260304")


# -- mid-year transfer ---------------------------------------------------------------------
def _transfer(db: Sis) -> None:
    # At A from the first day, EXITDATE Mon 2026-01-05: -1 = Sun 01-04, back over winter break -> Fri 2025-12-19.
    db.add_student(1, school=B, entry="2026-01-05")
    db.add_reenrollment(1, A, "2025-08-13", "2026-01-05")
    db.add_program(1, A, "191", program_id=501, dwelling="120", unaccompanied="N", runaway="N")
    db.add_program(1, B, "191", program_id=502, start="2026-01-05", dwelling="120", unaccompanied="N",
                   runaway="N")


TRANSFER_RECORDS = {
    ("SPRG", None, "1.501", "1234567", "0111111", "2025-2026", "1000000001", "100001", "Ana", "Lopez", "20150314",
     "F", "191", "3", "20250813", "20251219", None, None, None, None, None, None, "120", "N", "N"),
    ("SPRG", None, "1.502", "1234567", "0222222", "2025-2026", "1000000001", "100001", "Ana", "Lopez", "20150314",
     "F", "191", "3", "20260105", None, None, None, None, None, None, None, "120", "N", "N"),
}


def _check_transfer(df: pd.DataFrame) -> None:
    assert records(df) == TRANSFER_RECORDS
    a, b = row(df, "1.501"), row(df, "1.502")
    assert (a["ctx_student_id"], a["ctx_program_id"], b["ctx_program_id"]) == ("1", "501", "502")
    # "covers the membership range [start, end]": the record's range 3.15..3.16, so A's derived end 2025-12-19.
    assert (a["ctx_enrolled_at_school"], a["ctx_enrollment_covers_range"], a["ctx_enrollment_exit_date"]) == (
        "Y", "Y", "20251219")
    assert (b["ctx_enrolled_at_school"], b["ctx_enrollment_covers_range"], b["ctx_enrollment_exit_date"]) == (
        "Y", "Y", None)
    assert (a["ctx_preferred_gender"], a["ctx_legal_gender"], a["ctx_sped_exit_code"]) == ("F", None, None)


def test_mid_year_transfer_gives_each_school_its_own_record(sis):
    _transfer(sis)
    _check_transfer(run(sis))


@pytest.mark.postgres
def test_mid_year_transfer_on_postgresql(pg_sis):
    _transfer(pg_sis)
    _check_transfer(run(pg_sis))


# -- ctx_ columns ------------------------------------------------------------------------------
def test_ctx_for_a_program_at_a_school_without_an_enrollment(sis):
    # Brief: the program's school need only be reportable; SPRG-SCHOOL-OF-SERVICE (the gate) reports it.
    sis.add_student(1)  # enrolled at A only
    sis.add_program(1, B, "190", program_id=501)
    df = run(sis)
    assert records(df) == {rec(1, 501, CDS_B, "190", "20250813")}
    r = row(df, "1.501")
    assert (r["ctx_enrolled_at_school"], r["ctx_enrollment_covers_range"], r["ctx_enrollment_exit_date"]) == (
        "N", "N", None)


def test_ctx_enrollment_covers_range(sis):
    # Report range from the first school day, so clipping never asks about the summer.
    sis.add_student(1)  # at A all year
    sis.add_program(1, A, "190", program_id=501, start="2024-09-03")  # started last year: clipped -> covered
    sis.add_program(1, A, "191", program_id=502, start="2025-09-02", end="2025-12-19")
    sis.add_student(2, school=B, entry="2026-01-05")  # at B only from January
    sis.add_program(2, B, "190", program_id=503, start="2025-09-02")
    df = run(sis, start_date="2025-08-13")
    assert records(df) == {
        rec(1, 501, CDS_A, "190", "20240903"),
        rec(1, 502, CDS_A, "191", "20250902", "20251219"),
        rec(2, 503, CDS_B, "190", "20250902"),
    }
    assert row(df, "1.501")["ctx_enrollment_covers_range"] == "Y"
    assert row(df, "1.502")["ctx_enrollment_covers_range"] == "Y"
    r = row(df, "2.503")
    assert (r["ctx_enrolled_at_school"], r["ctx_enrollment_covers_range"]) == ("Y", "N")


# -- run params ----------------------------------------------------------------------------------
@pytest.fixture
def three_schools(sis: Sis) -> Sis:
    sis.add_school(C, CDS_C)  # no sub-district
    _transfer(sis)  # student 1: 501 at A, 502 at B
    sis.add_student(2, school=C)
    sis.add_program(2, C, "190", program_id=503)
    sis.add_student(3, school=A)
    sis.add_program(3, A, "190", program_id=504)
    return sis


@pytest.mark.parametrize("params, expected", [
    (dict(), {"1.501", "1.502", "2.503", "3.504"}),
    (dict(schools=[CDS_B]), {"1.502"}),  # by the program's school, not the student's current one
    (dict(schools=[CDS_A, CDS_C]), {"1.501", "2.503", "3.504"}),
    (dict(subdistricts=["North"]), {"1.501", "3.504"}),
    # Contract §2: subdistricts "narrowing the schools" -> both filters apply.
    (dict(schools=[CDS_A, CDS_B], subdistricts=["South"]), {"1.502"}),
    (dict(students=["100003"]), {"3.504"}),
    (dict(students=["100001", "100002"]), {"1.501", "1.502", "2.503"}),
])
def test_scope_params(three_schools, params, expected):
    assert ids(run(three_schools, **params)) == expected


# -- sort order ------------------------------------------------------------------------------------
def test_sort_order(sis):
    sis.add_student(4, first="Amy", last="Aaron", legal_last="Young")  # sorts as Young, Amy
    sis.add_program(4, A, "190", program_id=1401)
    sis.add_student(1, first="Zoe", last="Baker")
    sis.add_program(1, A, "190", program_id=1101)
    sis.add_student(5, first="Abe", last="Baker", legal_first="Ava")  # sorts as Baker, Ava (after Amy)
    sis.add_program(5, A, "190", program_id=1501)
    sis.add_student(6, first="Cole", last="Diaz", number="200002")
    sis.add_program(6, A, "190", program_id=1601)
    sis.add_student(7, first="Cole", last="Diaz", number="200001")  # same name: by Local Student ID
    sis.add_program(7, A, "190", program_id=1701)
    sis.add_student(3, first="Amy", last="Baker")
    sis.add_program(3, A, "190", program_id=1301)
    sis.add_student(2, first="Yara", last="Adams")
    sis.add_program(2, A, "190", program_id=1201)
    # Student 8 (Ford, Eve): at A until the winter break, then at B.
    sis.add_student(8, first="Eve", last="Ford", school=B, entry="2026-01-05")
    sis.add_reenrollment(8, A, "2025-08-13", "2026-01-05")
    sis.add_program(8, A, "192", program_id=1801, start="2025-09-02")
    sis.add_program(8, A, "190", program_id=1802, start="2025-08-13")
    sis.add_program(8, B, "191", program_id=1803, start="2025-09-02")
    sis.add_program(8, A, "191", program_id=1804, start="2025-09-02")
    sis.add_program(8, A, "122", program_id=1805, start="2025-08-13")
    sis.add_service(8, A, "07", "2025-10-01")
    sis.add_service(8, A, "05", "2025-10-02")
    df = run(sis)
    assert list(df["local_record_id"]) == [
        "2.1201",  # Adams Yara
        "3.1301",  # Baker Amy
        "5.1501",  # Baker Ava (legal first name)
        "1.1101",  # Baker Zoe
        "7.1701",  # Diaz Cole, 200001
        "6.1601",  # Diaz Cole, 200002
        # Ford Eve: start date, then school code, then program code / service code (tie-breakers)
        "8.1805.05", "8.1805.07", "8.1802",  # 2025-08-13 at A: 122 (05, 07), 190
        "8.1804", "8.1801",  # 2025-09-02 at A: 191, 192
        "8.1803",  # 2025-09-02 at B
        "4.1401",  # Young Amy (legal last name)
    ]
    assert list(df.index) == list(range(len(df)))


def test_sort_order_of_text_read_back_from_a_parquet_file_of_several_row_groups(tmp_path):
    """pandas hands such a column as large_string chunks whose offsets do not start at 0 (pyarrow 26's ASCII
    case-mapping kernel broke on them, and the diff of a 500k-student STAS run failed): the order is Python's
    case-insensitive sort, stable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from calpads.extracts.common import sort_order

    codes = [f"s{(i * 7919) % 997:04d}" if i % 3 else f"S{(i * 7919) % 997:04d}" for i in range(300_000)]
    pq.write_table(pa.table({"school": pa.array(codes, pa.string())}), tmp_path / "f.parquet",
                   row_group_size=150_000)
    column = pd.read_parquet(tmp_path / "f.parquet")["school"]
    expected = sorted(range(len(codes)), key=lambda i: codes[i].upper())
    assert sort_order({"school": column}, ["school"]).tolist() == expected
