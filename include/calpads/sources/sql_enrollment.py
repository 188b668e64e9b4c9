"""SQL reads shared by the SENR, STAS and LEAP builders: schools, calendars, enrollments, students.

Same conventions as ``calpads.sources.sql_sis`` (SQLAlchemy Core, bound parameters,
lower-case names, dates cast to text in SQL); the student filters (exclusion, SSID,
the ``students`` param) are the SPRG pull's own, imported from there.

The enrollment's CALPADS codes (contract v2: ENROLLMENTSTATUS, EXITCODE, COMPLETIONSTATUS,
RECEIVER_SCHOOL, UCCSU_REQS_MET on STUDENTS and REENROLLMENTS) are read where the database has
them: the pull inspects both tables once (SQLAlchemy inspection) and selects NULL for a column a
table lacks, so a SIS without them is still read and the pull says which ones are missing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from calpads.run_scope import RunScope
from calpads.sources.sql_sis import (
    ENROLLMENT_CODES,
    REENROLLMENTS,
    STUDENTS,
    _student_filters,
    _text,
)

CURRENT, EARLIER = "S", "R"   # the enrollment row's table: STUDENTS (current) or REENROLLMENTS
CODE_TABLES = {CURRENT: "STUDENTS", EARLIER: "REENROLLMENTS"}


@dataclass
class EnrollmentPull:
    lea: str
    schools: pd.DataFrame          # every reportable school (school_number, school_code, subdistrict)
    scoped_schools: pd.DataFrame   # those in the run's scope
    calendar: pd.DataFrame         # in-session days of the reportable schools (schoolid, date_value)
    enrollments: pd.DataFrame      # student_id, schoolid, grade_level, entrydate, exitdate, source, reenrollment_id,
                                   # and ENROLLMENT_CODES (None where the SIS lacks the column)
    students: pd.DataFrame         # student-level fields (see student_frame)
    # source (CURRENT / EARLIER) -> the ENROLLMENT_CODES its table has
    codes_read: dict[str, frozenset[str]] = field(default_factory=lambda: dict.fromkeys(CODE_TABLES, frozenset()))
    # enrollments in scope the pull leaves out, with a reason code (calpads.sources.sql_skipped): listed as
    # not extracted by the builders, never silently lost
    skipped: pd.DataFrame | None = None

    @property
    def missing_codes(self) -> list[str]:
        """The contract v2 columns the SIS lacks, as TABLE.COLUMN (empty when it has them all)."""
        return [f"{table}.{c.upper()}" for src, table in CODE_TABLES.items() for c in ENROLLMENT_CODES
                if c not in self.codes_read.get(src, frozenset())]


def codes_in_sis(conn: sa.Connection) -> dict[str, frozenset[str]]:
    """Which ENROLLMENT_CODES the SIS's STUDENTS and REENROLLMENTS tables have (SQLAlchemy inspection;
    names compared case-insensitively: SQLite keeps the contract's upper case, PostgreSQL folds it)."""
    insp = sa.inspect(conn)
    tables = {t.lower(): t for t in insp.get_table_names()}
    out = {}
    for src, table in CODE_TABLES.items():
        name = tables.get(table.lower())
        cols = {str(c["name"]).lower() for c in insp.get_columns(name)} if name else set()
        out[src] = frozenset(c for c in ENROLLMENT_CODES if c in cols)
    return out


def enrollment_selects(scope: RunScope, school_numbers: list[int], *, dates_as_text: bool = True,
                       codes: Mapping[str, Collection[str]] | None = None) -> tuple[sa.Select, sa.Select]:
    """Candidate enrollments (current on STUDENTS, earlier on REENROLLMENTS), pre-filtered on the raw
    EXITDATE (exact range test on the last in-session day: calpads.extracts.enrollment). dates_as_text=False
    keeps the database's date type, for joins inside SQL (calpads.sources.sql_attendance). codes (from
    codes_in_sis) adds the ENROLLMENT_CODES columns, NULL where the table lacks one."""
    start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
    s, r = STUDENTS.c, REENROLLMENTS.c

    def d(col: sa.ColumnClause) -> sa.ColumnElement:
        return _text(col) if dates_as_text else col

    def code_columns(table: sa.TableClause, src: str) -> list[sa.ColumnElement]:
        if codes is None:
            return []
        have = codes.get(src, ())
        return [(table.c[c] if c in have else sa.cast(sa.null(), sa.String(7))).label(c) for c in ENROLLMENT_CODES]

    current = sa.select(
        s.id.label("student_id"), s.schoolid, s.grade_level, d(s.entrydate).label("entrydate"),
        d(s.exitdate).label("exitdate"), sa.literal(CURRENT).label("source"),
        sa.cast(sa.null(), sa.Integer).label("reenrollment_id"), *code_columns(STUDENTS, CURRENT),
    ).where(*_student_filters(scope), s.schoolid.in_(school_numbers), s.entrydate <= end,
            sa.or_(s.exitdate.is_(None), s.exitdate > start))
    earlier = sa.select(
        r.studentid.label("student_id"), r.schoolid, r.grade_level, d(r.entrydate).label("entrydate"),
        d(r.exitdate).label("exitdate"), sa.literal(EARLIER).label("source"), r.id.label("reenrollment_id"),
        *code_columns(REENROLLMENTS, EARLIER),
    ).select_from(REENROLLMENTS.join(STUDENTS, s.id == r.studentid)).where(
        *_student_filters(scope), r.state_excludefromreporting == 0, r.schoolid.in_(school_numbers),
        r.entrydate <= end, sa.or_(r.exitdate.is_(None), r.exitdate > start))
    return current, earlier


def pull_enrollment(engine: sa.Engine, scope: RunScope, *, require_ssid: bool = True) -> EnrollmentPull:
    """The enrollment rows of a SIS database, staged in a temporary folder and selected by
    calpads.extracts.selection.enrollment_pull (tests, tools and benchmarks; a run stages in its work folder)."""
    from calpads.extracts.selection import enrollment_pull
    from calpads.staging.contract import ENROLLMENT_TABLES
    from calpads.staging.local import staged_from_sql

    with staged_from_sql(engine, ENROLLMENT_TABLES, scope) as staged:
        return enrollment_pull(staged, scope, require_ssid=require_ssid)
