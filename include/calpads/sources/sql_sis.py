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
    services: pd.DataFrame         # Title I services dated in the report range


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
    """The reportable schools narrowed by the run's schools and subdistricts params."""
    df = schools
    if scope.schools:
        df = df[df["school_code"].isin(scope.schools)]
    if scope.subdistricts:
        df = df[df["subdistrict"].isin(scope.subdistricts)]
    return df.reset_index(drop=True)


def _student_filters(scope: RunScope) -> list[sa.ColumnElement[bool]]:
    s = STUDENTS.c
    filters: list[sa.ColumnElement[bool]] = [
        s.state_excludefromreporting == 0,
        s.state_studentnumber.is_not(None),
        s.state_studentnumber != "",
    ]
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
            sa.or_(p.programstartdate.is_(None), p.programstartdate <= end),
            # '' is blank too on a SIS that stores dates as text (never true for a DATE column)
            sa.or_(p.programenddate.is_(None), _text(p.programenddate) == "", p.programenddate > start),
        ]
        # Only students with a candidate program matter to SPRG: the rest of the
        # district's students, enrollments and services never leave the database.
        candidates = sa.select(p.studentsdcid).where(*program_filters)
        student_filters = [*_student_filters(scope), STUDENTS.c.dcid.in_(candidates)]
        cal = sa.select(CALENDAR_DAY.c.schoolid, _text(CALENDAR_DAY.c.date_value).label("date_value")).where(
            CALENDAR_DAY.c.insession == 1, CALENDAR_DAY.c.schoolid.in_(school_numbers)
        )
        calendar = pd.read_sql(cal, conn)

        s, r = STUDENTS.c, REENROLLMENTS.c
        current = sa.select(
            s.id.label("student_id"), s.schoolid, _text(s.entrydate).label("entrydate"),
            _text(s.exitdate).label("exitdate"),
        ).where(
            *student_filters, s.schoolid.in_(school_numbers), s.entrydate <= end,
            sa.or_(s.exitdate.is_(None), s.exitdate > start),
        )
        earlier = sa.select(
            r.studentid.label("student_id"), r.schoolid, _text(r.entrydate).label("entrydate"),
            _text(r.exitdate).label("exitdate"),
        ).select_from(REENROLLMENTS.join(STUDENTS, s.id == r.studentid)).where(
            *student_filters, r.state_excludefromreporting == 0, r.schoolid.in_(school_numbers),
            r.entrydate <= end, sa.or_(r.exitdate.is_(None), r.exitdate > start),
        )
        enrollments = pd.read_sql(sa.union_all(current, earlier), conn)

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
        ).select_from(PROGRAMS.join(STUDENTS, s.dcid == p.studentsdcid)).where(*_student_filters(scope),
                                                                               *program_filters)
        programs = pd.read_sql(programs_q, conn)

        v = SERVICES.c
        services = pd.DataFrame(columns=["student_id", "schoolid", "servicecode"])
        if "122" in program_codes:
            services_q = sa.select(s.id.label("student_id"), v.schoolid, v.servicecode).distinct().select_from(
                SERVICES.join(STUDENTS, s.dcid == v.studentsdcid)
            ).where(*student_filters, v.servicedate >= start, v.servicedate <= end)
            services = pd.read_sql(services_q, conn)
    return SprgPull(lea, all_schools, schools, calendar, enrollments, students, programs, services)
