"""The API sources' streaming attendance aggregation equals the SQL source's, on the demo district.

``calpads.sources.attendance_pages`` streams API pages through the joins of
``sql_attendance.category_counts`` (STAS) and ``sql_attendance.absent_days`` (LEAP), over the ranges and
enrollments ``calpads.extracts.selection`` gives every source. Both run here over the same SQLite SIS,
with the awkward cases planted: duplicate rows, several codes on one day, overlapping enrollments, rows
outside every enrollment, rows on days out of session or missing from the calendar, period-mode rows, rows
with an unknown code, rows outside the report range.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.extracts import stas
from calpads.extracts.selection import absent_days_range, category_days_scope
from calpads.run_scope import RunScope
from calpads.sources.api_tables import TABLE_COLUMNS
from calpads.sources.attendance_pages import ABSENT_DAYS, ATTENDANCE_COLUMNS, CATEGORY_DAYS, AttendancePages
from calpads.sources.sql_attendance import absent_days, category_counts
from calpads.sources.sql_sis import narrow_schools, reportable_schools
from tests.integration.vendor_servers.common import read_tables

YEAR_END = date(2026, 6, 30)


@pytest.fixture(scope="module")
def sis(tmp_path_factory) -> sa.Engine:
    from calpads.demo.generator import generate_district

    path: Path = tmp_path_factory.mktemp("att") / "sis.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    generate_district(engine, students=400, seed=11, dirty=0.05, log=lambda _m: None)
    plant_awkward_attendance(engine)
    return engine


def plant_awkward_attendance(engine: sa.Engine) -> None:
    """The cases the one-category-per-day rule and the joins must get right (plain SQL on the copy)."""
    with engine.begin() as c:
        top = c.exec_driver_sql("SELECT MAX(id) FROM attendance").scalar()

        def insert(select: str) -> None:
            nonlocal top
            c.exec_driver_sql(f"INSERT INTO attendance (id, studentid, schoolid, att_date, attendance_codeid, "  # noqa: S608
                              f"att_mode_code) SELECT {top} + ROW_NUMBER() OVER (), * FROM ({select})")
            top = c.exec_driver_sql("SELECT MAX(id) FROM attendance").scalar()

        first = "SELECT studentid, schoolid, att_date, attendance_codeid, att_mode_code FROM attendance"
        insert(f"{first} ORDER BY id LIMIT 60")                                         # duplicate rows
        # several codes on one day: an out-of-school suspension (the strongest) and a Present code beside
        # absences, an excused code beside unexcused ones
        for k in (3, 6, 0):
            insert(f"SELECT a.studentid, a.schoolid, a.att_date, (a.schoolid / 10 - 10) * 10 + {k + 1}, "  # noqa: S608
                   f"'ATT_ModeDaily' FROM attendance a WHERE a.id % 7 = {k} LIMIT 80")
        # rows outside any enrollment: before the current entry date, and at a school never attended
        insert("SELECT s.id, s.schoolid, c.date_value, (s.schoolid / 10 - 10) * 10 + 3, 'ATT_ModeDaily' "
               "FROM students s JOIN calendar_day c ON c.schoolid = s.schoolid AND c.insession = 1 "
               "AND c.date_value < s.entrydate LIMIT 120")
        insert("SELECT s.id, CASE WHEN s.schoolid = 100 THEN 110 ELSE 100 END, c.date_value, 3, 'ATT_ModeDaily' "
               "FROM students s JOIN calendar_day c ON c.schoolid = 100 AND c.insession = 1 "
               "WHERE s.id % 5 = 0 AND c.date_value BETWEEN '2025-10-01' AND '2025-10-03'")
        # days out of session (weekends, holidays) and days the calendar does not have
        insert("SELECT s.id, s.schoolid, c.date_value, (s.schoolid / 10 - 10) * 10 + 1, 'ATT_ModeDaily' "
               "FROM students s JOIN calendar_day c ON c.schoolid = s.schoolid AND c.insession = 0 "
               "AND c.date_value > s.entrydate WHERE s.id % 9 = 0 LIMIT 150")
        insert("SELECT id, schoolid, '2026-07-15', (schoolid / 10 - 10) * 10 + 1, 'ATT_ModeDaily' FROM students "
               "WHERE id % 11 = 0")
        # the exclusive EXITDATE: a row on the day an earlier enrollment ended is outside it
        insert("SELECT r.studentid, r.schoolid, r.exitdate, (r.schoolid / 10 - 10) * 10 + 3, 'ATT_ModeDaily' "
               "FROM reenrollments r JOIN calendar_day c ON c.schoolid = r.schoolid AND c.date_value = r.exitdate "
               "AND c.insession = 1")
        # period attendance, an unknown code, and rows before the year
        insert("SELECT studentid, schoolid, att_date, attendance_codeid, 'ATT_ModeMeeting' FROM attendance "
               "WHERE id % 13 = 0")
        insert("SELECT studentid, schoolid, att_date, 99999, 'ATT_ModeDaily' FROM attendance WHERE id % 17 = 0")
        insert("SELECT studentid, schoolid, '2025-06-20', attendance_codeid, 'ATT_ModeDaily' FROM attendance "
               "WHERE id % 19 = 0")
        # overlapping enrollments: an earlier enrollment at the same school that runs into the current one
        top_r = c.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM reenrollments").scalar()
        c.exec_driver_sql(
            f"INSERT INTO reenrollments (id, studentid, schoolid, grade_level, entrydate, exitdate, "  # noqa: S608
            f"state_excludefromreporting) SELECT {top_r} + ROW_NUMBER() OVER (), id, schoolid, grade_level, "
            "'2025-08-01', '2026-01-15', 0 FROM students WHERE entrydate > '2025-08-20' AND id % 2 = 0")
        # students and enrollments the enrollment selection leaves out (no SSID, excluded), with attendance
        with_rows = "id IN (SELECT studentid FROM attendance)"
        c.exec_driver_sql(f"UPDATE students SET state_studentnumber = NULL WHERE {with_rows} AND id % 23 = 0")  # noqa: S608
        c.exec_driver_sql(f"UPDATE students SET state_studentnumber = '' WHERE {with_rows} AND id % 31 = 0")  # noqa: S608
        c.exec_driver_sql(f"UPDATE students SET state_excludefromreporting = 1 WHERE {with_rows} AND id % 29 = 0")  # noqa: S608
        c.exec_driver_sql("UPDATE reenrollments SET state_excludefromreporting = 1 WHERE entrydate = '2025-08-01' "
                          "AND studentid % 4 = 0")
        insert("SELECT r.studentid, r.schoolid, c.date_value, (r.schoolid / 10 - 10) * 10 + 3, 'ATT_ModeDaily' "
               "FROM reenrollments r JOIN students s ON s.id = r.studentid JOIN calendar_day c "
               "ON c.schoolid = r.schoolid AND c.insession = 1 AND c.date_value >= r.entrydate "
               "AND c.date_value < s.entrydate WHERE r.entrydate = '2025-08-01'")
        n = c.exec_driver_sql("SELECT COUNT(*) FROM reenrollments WHERE entrydate = '2025-08-01'").scalar()
        assert n > 0, "the demo has no late entries to overlap"


def api_frames(engine: sa.Engine, scope: RunScope, page_size: int = 333) -> dict[str, pd.DataFrame]:
    """What an API source hands over: the small tables as text rows, attendance page by page."""
    agg = AttendancePages(read_tables(engine, TABLE_COLUMNS), scope)
    rows = read_tables(engine, {"attendance": ATTENDANCE_COLUMNS})["attendance"]
    for i in range(0, len(rows), page_size):
        agg.add(rows[i:i + page_size])
    return agg.frames()


def sql_frames(engine: sa.Engine, scope: RunScope, narrowed: bool = False) -> dict[str, pd.DataFrame]:
    """The SQL source's own statements, called as its adapter calls them (staging.sql_adapter): the counts over
    every reportable school (as stas.lea_wide_recovery reads them), or with ``narrowed`` over the run's schools
    (as the STAS builder keeps them); the absences over LEAP's reporting year."""
    cfg = stas.settings()
    counting = category_days_scope(scope)
    with engine.connect() as conn:
        schools = reportable_schools(conn)
        if narrowed:
            schools = narrow_schools(schools, scope)
    counts = category_counts(engine, counting, [int(n) for n in schools["school_number"]],
                             list(cfg["categories"]), cfg["categories"], cfg["uncategorised_absent"])
    return {CATEGORY_DAYS: counts, ABSENT_DAYS: absent_days(engine, *absent_days_range(scope))}


def scoped(counts: pd.DataFrame, engine: sa.Engine, scope: RunScope) -> pd.DataFrame:
    """The LEA-wide counts kept to the run's schools (what the STAS builder does)."""
    with engine.connect() as conn:
        numbers = narrow_schools(reportable_schools(conn), scope)["school_number"]
    return counts[counts["schoolid"].isin(numbers)]


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = list(a.columns[:2])
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=True)


SCOPES = {
    "whole year": RunScope.from_params("STAS", {"academic_year": "2025-2026"}, YEAR_END),
    "mid-year run, two schools": RunScope.from_params(
        "STAS", {"academic_year": "2025-2026", "schools": "6010037,0130037"}, date(2026, 2, 10)),
    "one sub-district, a date range": RunScope.from_params(
        "STAS", {"academic_year": "2025-2026", "subdistricts": "South", "start_date": "2025-09-15",
                 "end_date": "2026-03-31"}, YEAR_END),
}


@pytest.mark.parametrize("name", list(SCOPES))
def test_stream_equals_the_sql_aggregation(sis, name):
    scope = SCOPES[name]
    api, sql = api_frames(sis, scope), sql_frames(sis, scope)
    assert len(sql[CATEGORY_DAYS]) > 20 and len(sql[ABSENT_DAYS]) > 100     # the comparison compares something
    same(api[CATEGORY_DAYS], sql[CATEGORY_DAYS])
    same(api[ABSENT_DAYS], sql[ABSENT_DAYS])
    narrowed = sql_frames(sis, scope, narrowed=True)[CATEGORY_DAYS]      # what stas.pull_stas reads
    assert len(narrowed) > 0
    same(scoped(api[CATEGORY_DAYS], sis, scope), narrowed)


def test_page_size_does_not_matter(sis):
    scope = SCOPES["whole year"]
    one, many = api_frames(sis, scope, page_size=10**9), api_frames(sis, scope, page_size=7)
    for k in (CATEGORY_DAYS, ABSENT_DAYS):
        pd.testing.assert_frame_equal(one[k], many[k])


def test_the_planted_cases_change_the_counts(sis):
    """The planted rows matter: dropping the one-category-per-day rule, the session test or the enrollment
    test changes the result, so the equality above is not an accident of clean data."""
    scope = SCOPES["whole year"]
    good = api_frames(sis, scope)[CATEGORY_DAYS]
    tables = read_tables(sis, TABLE_COLUMNS)
    rows = read_tables(sis, {"attendance": ATTENDANCE_COLUMNS})["attendance"]

    class EveryDay(AttendancePages):
        def _enrolled(self, sid: int, school: int, day: str) -> bool:
            return True

    loose = EveryDay(tables, scope)
    loose.in_session = {(int(a["schoolid"]), a["att_date"]) for a in rows}
    loose.add(rows)
    assert not loose.category_days().equals(good)

    # Summing every code of a day instead of keeping the strongest counts more days than there are
    agg = AttendancePages(tables, scope)
    agg.add(rows)
    per_day = len(agg.best)
    agg.add(rows)                                  # the same rows again: still one category a day
    assert len(agg.best) == per_day
    pd.testing.assert_frame_equal(agg.category_days(), good)


def test_a_narrowed_student_list_narrows_the_counts(sis):
    scope = SCOPES["whole year"]
    with sis.connect() as c:
        numbers = tuple(str(n) for n in c.exec_driver_sql(
            "SELECT student_number FROM students WHERE id IN (SELECT studentid FROM attendance) LIMIT 5").scalars())
    narrowed = replace(scope, students=numbers)
    same(api_frames(sis, narrowed)[CATEGORY_DAYS], sql_frames(sis, narrowed)[CATEGORY_DAYS])
