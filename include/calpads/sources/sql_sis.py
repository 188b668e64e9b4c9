"""The SQL source: reads the contract tables of a PowerSchool-shaped SIS database.

SQLAlchemy Core with bound parameters only; the selection that SQL can do
(exclusions, SSID present, the report date range, the program set, the
schools in scope) is pushed down so that a large district does not ship its
whole history over the wire. Table and column names are written in lower case:
SQLite and MS SQL match them case-insensitively and PostgreSQL folds the
contract's unquoted upper-case DDL to lower case.

Every date column is cast to text in SQL ('YYYY-MM-DD' on each backend), so
that pandas sees one representation whatever the database, and an unparsable
date on a text-typed SIS reaches the quality gate instead of crashing the pull.
A date filter never drops such a value either (``not_a_date``): 'not a date' or
'31/12/2025' fails every text comparison with a report date, so the row would
vanish without a trace, and a submitted record of it would become a delete.
For the same reason the SPRG pull keeps students without an SSID: the builder
lists their records as not extracted ("no SSID yet") instead of losing them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from calpads.run_scope import RunScope


def _t(name: str, *cols: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in cols))


PREFS = _t("prefs", "id", "name", "value", "schoolid")
SCHOOLS = _t("schools", "id", "school_number", "name", "alternate_school_number", "subdistrict",
             "state_excludefromreporting")
CALENDAR_DAY = _t("calendar_day", "schoolid", "date_value", "insession")
# Contract v2 enrollment codes (SENR 1.23, 1.26-1.29) on STUDENTS and REENROLLMENTS. A SIS may lack them:
# calpads.sources.sql_enrollment selects only those the database has.
ENROLLMENT_CODES = ("enrollmentstatus", "exitcode", "completionstatus", "receiver_school", "uccsu_reqs_met")
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
    q = sa.select(PREFS.c.value).where(PREFS.c.name == "districtnumber", PREFS.c.schoolid == 0)
    value = conn.execute(q).scalar()
    if not value or not str(value).strip():
        raise SisDataError(
            "The SIS has no district number (PREFS name 'districtnumber' at district level): "
            "enter the 7-digit Reporting LEA code on PowerSchool's District Info page."
        )
    return str(value).strip()


def reportable_schools(conn: sa.Connection) -> pd.DataFrame:
    """Schools not excluded from state reporting."""
    q = sa.select(
        SCHOOLS.c.school_number, SCHOOLS.c.alternate_school_number.label("school_code"), SCHOOLS.c.subdistrict
    ).where(SCHOOLS.c.state_excludefromreporting == 0)
    df = pd.read_sql(q, conn)
    df["school_code"] = df["school_code"].astype("object").where(df["school_code"].notna(), None)
    df["school_code"] = df["school_code"].map(lambda v: str(v).strip() if v is not None else None)
    return df


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
    start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
    with engine.connect() as conn:
        lea = reporting_lea(conn)
        # Enrollments at any reportable school count for student selection; the
        # run's schools/subdistricts apply to the programs (school of service).
        all_schools = reportable_schools(conn)
        schools = narrow_schools(all_schools, scope)
        school_numbers = [int(n) for n in all_schools["school_number"]]
        p = PROGRAMS.c
        scoped_numbers = [int(n) for n in schools["school_number"]]
        program_filters = [
            p.schoolid.in_(scoped_numbers),
            # Blank program codes are fetched too, so that they can be counted as
            # "not extracted" instead of vanishing.
            sa.or_(p.programcode.in_(program_codes), p.programcode.is_(None), p.programcode == ""),
            sa.or_(p.programstartdate.is_(None), p.programstartdate <= end, not_a_date(p.programstartdate)),
            # '' is blank too on a SIS that stores dates as text (never true for a DATE column)
            sa.or_(p.programenddate.is_(None), _text(p.programenddate) == "", p.programenddate > start,
                   not_a_date(p.programenddate)),
        ]
        # Only students with a candidate program matter to SPRG: the rest of the
        # district's students, enrollments and services never leave the database.
        # Students without an SSID are pulled: their records are listed as not extracted.
        candidates = sa.select(p.studentsdcid).where(*program_filters)
        student_filters = [*_student_filters(scope, require_ssid=False), STUDENTS.c.dcid.in_(candidates)]
        cal = sa.select(CALENDAR_DAY.c.schoolid, _text(CALENDAR_DAY.c.date_value).label("date_value")).where(
            CALENDAR_DAY.c.insession == 1, CALENDAR_DAY.c.schoolid.in_(school_numbers)
        )
        calendar = pd.read_sql(cal, conn)

        s, r = STUDENTS.c, REENROLLMENTS.c
        current = sa.select(
            s.id.label("student_id"), s.schoolid, _text(s.entrydate).label("entrydate"),
            _text(s.exitdate).label("exitdate"),
        ).where(
            *student_filters, s.schoolid.in_(school_numbers), sa.or_(s.entrydate <= end, not_a_date(s.entrydate)),
            sa.or_(s.exitdate.is_(None), s.exitdate > start, not_a_date(s.exitdate)),
        )
        earlier = sa.select(
            r.studentid.label("student_id"), r.schoolid, _text(r.entrydate).label("entrydate"),
            _text(r.exitdate).label("exitdate"),
        ).select_from(REENROLLMENTS.join(STUDENTS, s.id == r.studentid)).where(
            *student_filters, r.state_excludefromreporting == 0, r.schoolid.in_(school_numbers),
            sa.or_(r.entrydate <= end, not_a_date(r.entrydate)),
            sa.or_(r.exitdate.is_(None), r.exitdate > start, not_a_date(r.exitdate)),
        )
        enrollments = pd.read_sql(sa.union_all(current, earlier), conn)
        enrolled = pd.read_sql(enrolled_students_select(scope, scoped_numbers), conn)

        x = STU_X.c
        students_q = sa.select(
            s.id.label("student_id"), s.dcid, s.student_number, s.state_studentnumber.label("ssid"),
            s.first_name, s.last_name, _text(s.dob).label("dob"), s.gender,
            x.legalfirstname, x.legallastname, x.legalgender,
        ).select_from(STUDENTS.outerjoin(STU_X, x.studentsdcid == s.dcid)).where(*student_filters)
        students = pd.read_sql(students_q, conn)

        programs_q = sa.select(
            s.id.label("student_id"), p.id.label("program_id"), p.schoolid, p.programcode, p.programmembershipcode,
            _text(p.programstartdate).label("programstartdate"), _text(p.programenddate).label("programenddate"),
            p.partnershipacademyid, p.migrantstudentid, p.prmarydisabilitycode, p.distspedaccountability,
            p.dwellingtype, p.unaccompaniedyouth, p.runawayyouth, p.spedexitcode,
        ).select_from(PROGRAMS.join(STUDENTS, s.dcid == p.studentsdcid)).where(
            *_student_filters(scope, require_ssid=False), *program_filters)
        programs = pd.read_sql(programs_q, conn)

        v = SERVICES.c
        services = pd.DataFrame(columns=["student_id", "schoolid", "servicecode", "unreadable_date"])
        if "122" in program_codes:
            services_q = sa.select(
                s.id.label("student_id"), v.schoolid, v.servicecode,
                sa.case((not_a_date(v.servicedate), 1), else_=0).label("unreadable_date"),
            ).distinct().select_from(SERVICES.join(STUDENTS, s.dcid == v.studentsdcid)).where(
                *student_filters,
                sa.or_(sa.and_(v.servicedate >= start, v.servicedate <= end), not_a_date(v.servicedate)))
            services = pd.read_sql(services_q, conn)
    return SprgPull(lea, all_schools, schools, calendar, enrollments, students, programs, services, enrolled)


def enrolled_students_select(scope: RunScope, school_numbers: list[int]) -> sa.Select:
    """Local Student IDs of the students (not excluded from state reporting, SSID or not) with an enrollment,
    current or earlier, at one of ``school_numbers`` overlapping the report range by its raw dates
    (entry on or before the end, EXITDATE blank or after the start). Wider than the exact rule on the
    last in-session day, on purpose: it decides which deletes need allow_enrolled_deletes."""
    start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
    s, r = STUDENTS.c, REENROLLMENTS.c
    students = _student_filters(scope, require_ssid=False)
    current = sa.select(s.student_number).where(
        *students, s.schoolid.in_(school_numbers), s.entrydate <= end,
        sa.or_(s.exitdate.is_(None), s.exitdate > start))
    earlier = sa.select(s.student_number).select_from(REENROLLMENTS.join(STUDENTS, s.id == r.studentid)).where(
        *students, r.state_excludefromreporting == 0, r.schoolid.in_(school_numbers), r.entrydate <= end,
        sa.or_(r.exitdate.is_(None), r.exitdate > start))
    return sa.union(current, earlier)
