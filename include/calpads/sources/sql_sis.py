"""The SIS database's contract tables as SQLAlchemy Core clauses, and what the staging model shares.

Table and column names are written in lower case: SQLite and MS SQL match them
case-insensitively and PostgreSQL folds the contract's unquoted upper-case DDL to lower case.
The staged tables are read by calpads.staging.sql_adapter; which rows a CALPADS file reads is
decided once, in pandas, by calpads.extracts.selection. ``not_a_date`` keeps a date that is not
a date in every pushed-down date filter: 'not a date' or '31/12/2025' fails every text
comparison with a report date, so the row would vanish without a trace, and a submitted record
of it would become a delete.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from calpads.run_scope import RunScope
from calpads.staging.contract import ENROLLMENT_CODES


def _t(name: str, *cols: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in cols))


PREFS = _t("prefs", "id", "name", "value", "schoolid")
SCHOOLS = _t("schools", "id", "school_number", "name", "alternate_school_number", "subdistrict",
             "state_excludefromreporting")
CALENDAR_DAY = _t("calendar_day", "id", "schoolid", "date_value", "insession")
# Contract v2 enrollment codes (SENR 1.23, 1.26-1.29) on STUDENTS and REENROLLMENTS. A SIS may lack them:
# calpads.sources.sql_enrollment selects only those the database has.
STUDENTS = _t("students", "id", "dcid", "student_number", "state_studentnumber", "first_name", "last_name", "dob",
              "gender", "schoolid", "grade_level", "entrydate", "exitdate", "enroll_status",
              "state_excludefromreporting", *ENROLLMENT_CODES)
REENROLLMENTS = _t("reenrollments", "id", "studentid", "schoolid", "grade_level", "entrydate", "exitdate",
                   "state_excludefromreporting", *ENROLLMENT_CODES)
STU_X = _t("s_ca_stu_x", "studentsdcid", "legalfirstname", "legallastname", "legalgender")
PROGRAMS = _t("s_ca_stu_calpadsprograms_c", "id", "studentsdcid", "schoolid", "programcode", "programmembershipcode",
              "programstartdate", "programenddate", "partnershipacademyid", "migrantstudentid",
              "prmarydisabilitycode", "distspedaccountability", "dwellingtype", "unaccompaniedyouth", "runawayyouth",
              "spedexitcode")
SERVICES = _t("s_ca_calpads_studentservices_c", "id", "studentsdcid", "schoolid", "servicecode", "servicedate")


class SisDataError(RuntimeError):
    """The SIS lacks something every record needs (said in the coordinator's words)."""


def _text(col: sa.ColumnClause) -> sa.Cast:
    return sa.cast(col, sa.String(10))


def not_a_date(col: sa.ColumnClause) -> sa.ColumnElement[bool]:
    """True for a date value not shaped 'YYYY-MM-DD' (a text-typed SIS column holding 'not a date' or
    '31/12/2025'); NULL for NULL. OR-ed into each date filter so that such a row is pulled and reported by
    the builder or the gate. Never true for a DATE column: its text form is always ISO."""
    return sa.not_(sa.cast(col, sa.String()).like("____-__-__"))


@dataclass
class SprgPull:
    """The SIS rows one SPRG run needs (see pull_sprg)."""

    lea: str
    schools: pd.DataFrame          # every reportable school (school_number, school_code, subdistrict)
    scoped_schools: pd.DataFrame   # those in the run's scope
    calendar: pd.DataFrame         # in-session days of those schools
    enrollments: pd.DataFrame      # candidate enrollments (current + re-enrollments)
    students: pd.DataFrame         # student-level fields of the candidates
    programs: pd.DataFrame         # candidate program memberships
    services: pd.DataFrame         # Title I services dated in the report range (unreadable_date 1: date not a date)
    # Local Student IDs (student_number) of every student not excluded from state reporting with an enrollment
    # overlapping the report range at a school in scope, SSID or not, program or not: a delete of such a
    # student's record needs the run's allow_enrolled_deletes (calpads.history.guard).
    enrolled_students: pd.DataFrame | None = None


def reporting_lea(conn: sa.Connection) -> str:
    """The Reporting LEA code (calpads.extracts.selection.reporting_lea) read from the SIS database."""
    from calpads.extracts.selection import reporting_lea as lea_of

    return lea_of(pd.read_sql(sa.select(*PREFS.c), conn))


def reportable_schools(conn: sa.Connection) -> pd.DataFrame:
    """The reportable schools (calpads.extracts.selection.reportable_schools) read from the SIS database."""
    from calpads.extracts.selection import reportable_schools as reportable

    return reportable(pd.read_sql(sa.select(*SCHOOLS.c), conn))


def narrow_schools(schools: pd.DataFrame, scope: RunScope) -> pd.DataFrame:
    """The reportable schools narrowed by the run's schools and subdistricts params. A school code or
    sub-district the district does not have, or a choice that leaves no school, raises ScopeError (listing
    the known values): it must never quietly become an empty run, nor the whole district."""
    from calpads.run_scope import ScopeError, check_schools_known

    check_schools_known(scope, schools["school_code"].dropna().tolist(), schools["subdistrict"].dropna().tolist())
    df = schools
    if scope.schools:
        df = df[df["school_code"].isin(scope.schools)]
    if scope.subdistricts:
        df = df[df["subdistrict"].isin(scope.subdistricts)]
    if (scope.schools or scope.subdistricts) and df.empty:
        raise ScopeError("the schools and subdistricts chosen have no school in common: no school of the district "
                         "is in both. Trigger the run again with matching values (or only one of the two).")
    return df.reset_index(drop=True)


def _student_filters(scope: RunScope, require_ssid: bool = True) -> list[sa.ColumnElement[bool]]:
    s = STUDENTS.c
    filters: list[sa.ColumnElement[bool]] = [s.state_excludefromreporting == 0]
    if require_ssid:
        filters += [s.state_studentnumber.is_not(None), s.state_studentnumber != ""]
    if scope.students:
        filters.append(s.student_number.in_(scope.students))
    return filters


def pull_sprg(engine: sa.Engine, scope: RunScope, program_codes: list[str]) -> SprgPull:
    """The SPRG rows of a SIS database, staged in a temporary folder and selected by
    calpads.extracts.selection.sprg_pull (tests and tools; a run stages in its work folder)."""
    from calpads.extracts import sprg
    from calpads.extracts.selection import sprg_pull
    from calpads.staging.local import staged_from_sql

    with staged_from_sql(engine, sprg.TABLES, scope) as staged:
        return sprg_pull(staged, scope, program_codes)
