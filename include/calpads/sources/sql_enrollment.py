"""SQL reads shared by the SENR, STAS and LEAP builders: schools, calendars, enrollments, students.

Same conventions as ``calpads.sources.sql_sis`` (SQLAlchemy Core, bound parameters,
lower-case names, dates cast to text in SQL); the student filters (exclusion, SSID,
the ``students`` param) are the SPRG pull's own, imported from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from calpads.run_scope import RunScope
from calpads.sources.sql_sis import (
    CALENDAR_DAY,
    REENROLLMENTS,
    STU_X,
    STUDENTS,
    _student_filters,
    _text,
    narrow_schools,
    reportable_schools,
    reporting_lea,
)

CURRENT, EARLIER = "S", "R"   # the enrollment row's table: STUDENTS (current) or REENROLLMENTS


@dataclass
class EnrollmentPull:
    lea: str
    schools: pd.DataFrame          # every reportable school (school_number, school_code, subdistrict)
    scoped_schools: pd.DataFrame   # those in the run's scope
    calendar: pd.DataFrame         # in-session days of the reportable schools (schoolid, date_value)
    enrollments: pd.DataFrame      # student_id, schoolid, grade_level, entrydate, exitdate, source, reenrollment_id
    students: pd.DataFrame         # student-level fields (see student_frame)
    # enrollments in scope the pull leaves out, with a reason code (calpads.sources.sql_skipped): listed as
    # not extracted by the builders, never silently lost
    skipped: pd.DataFrame | None = None


def enrollment_selects(scope: RunScope, school_numbers: list[int], *, dates_as_text: bool = True,
                       ) -> tuple[sa.Select, sa.Select]:
    """Candidate enrollments (current on STUDENTS, earlier on REENROLLMENTS), pre-filtered on the raw
    EXITDATE (exact range test on the last in-session day: calpads.extracts.enrollment). dates_as_text=False
    keeps the database's date type, for joins inside SQL (calpads.sources.sql_attendance)."""
    start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
    s, r = STUDENTS.c, REENROLLMENTS.c

    def d(col: sa.ColumnClause) -> sa.ColumnElement:
        return _text(col) if dates_as_text else col

    current = sa.select(
        s.id.label("student_id"), s.schoolid, s.grade_level, d(s.entrydate).label("entrydate"),
        d(s.exitdate).label("exitdate"), sa.literal(CURRENT).label("source"),
        sa.cast(sa.null(), sa.Integer).label("reenrollment_id"),
    ).where(*_student_filters(scope), s.schoolid.in_(school_numbers), s.entrydate <= end,
            sa.or_(s.exitdate.is_(None), s.exitdate > start))
    earlier = sa.select(
        r.studentid.label("student_id"), r.schoolid, r.grade_level, d(r.entrydate).label("entrydate"),
        d(r.exitdate).label("exitdate"), sa.literal(EARLIER).label("source"), r.id.label("reenrollment_id"),
    ).select_from(REENROLLMENTS.join(STUDENTS, s.id == r.studentid)).where(
        *_student_filters(scope), r.state_excludefromreporting == 0, r.schoolid.in_(school_numbers),
        r.entrydate <= end, sa.or_(r.exitdate.is_(None), r.exitdate > start))
    return current, earlier


def student_select(scope: RunScope, *, require_ssid: bool = True) -> sa.Select:
    s, x = STUDENTS.c, STU_X.c
    filters = _student_filters(scope) if require_ssid else [s.state_excludefromreporting == 0, *(
        [s.student_number.in_(scope.students)] if scope.students else [])]
    return sa.select(
        s.id.label("student_id"), s.dcid, s.student_number, s.state_studentnumber.label("ssid"),
        s.first_name, s.last_name, _text(s.dob).label("dob"), s.gender, s.grade_level, s.schoolid,
        x.legalfirstname, x.legallastname, x.legalgender,
    ).select_from(STUDENTS.outerjoin(STU_X, x.studentsdcid == s.dcid)).where(*filters)


def pull_enrollment(engine: sa.Engine, scope: RunScope, *, require_ssid: bool = True) -> EnrollmentPull:
    with engine.connect() as conn:
        lea = reporting_lea(conn)
        schools = reportable_schools(conn)
        scoped = narrow_schools(schools, scope)
        numbers = [int(n) for n in schools["school_number"]]
        cal = sa.select(CALENDAR_DAY.c.schoolid, _text(CALENDAR_DAY.c.date_value).label("date_value")).where(
            CALENDAR_DAY.c.insession == 1, CALENDAR_DAY.c.schoolid.in_(numbers))
        calendar = pd.read_sql(cal, conn)
        current, earlier = enrollment_selects(scope, [int(n) for n in scoped["school_number"]])
        enrollments = pd.read_sql(sa.union_all(current, earlier), conn)
        students = pd.read_sql(student_select(scope, require_ssid=require_ssid), conn)
        from calpads.sources.sql_skipped import skipped_select

        skipped = pd.read_sql(skipped_select(scope, [int(n) for n in scoped["school_number"]]), conn)
    return EnrollmentPull(lea, schools, scoped, calendar, enrollments, students, skipped)
