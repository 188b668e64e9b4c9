"""Hand-made PowerSchool-shaped SIS databases for unit tests.

Each test builds the few rows that matter to it; everything else has a default:
academic year 2025-2026 (YEARID 35), Reporting LEA 1234567 in PREFS, a school
calendar from 2025-08-13 to 2026-06-04 with weekends and DEFAULT_HOLIDAYS off.

Ids are deliberately different from one another so that a wrong join shows:
STUDENTS.DCID = STUDENTS.ID + 1000 and SCHOOLS.ID (1, 2, ...) is not
SCHOOLS.SCHOOL_NUMBER (the internal number that other tables' SCHOOLID holds).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from calpads.sources.sis_schema import create_sis_schema

YEAR_ID = 35  # 2025-2026
LEA = "1234567"
FIRST_DAY = date(2025, 8, 13)  # Wednesday
LAST_DAY = date(2026, 6, 4)  # Thursday
# Labor Day, winter break (Mon 2025-12-22 .. Fri 2026-01-02), Presidents' Day.
DEFAULT_HOLIDAYS: tuple[str, ...] = (
    "2025-09-01",
    *[(date(2025, 12, 22) + timedelta(days=i)).isoformat() for i in range(12)],
    "2026-02-16",
)
DCID_OFFSET = 1000

DateLike = date | str | None


def as_date(value: DateLike) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def ssid_of(student_id: int) -> str:
    """Default SSID of a student: 10 digits."""
    return f"{1000000000 + student_id}"


def number_of(student_id: int) -> str:
    """Default Local Student ID (STUDENT_NUMBER) of a student."""
    return f"{100000 + student_id}"


ENROLLMENT_CODES = ("enrollmentstatus", "exitcode", "completionstatus", "receiver_school", "uccsu_reqs_met")


def _codes(codes: dict[str, str | None]) -> dict[str, str | None]:
    unknown = set(codes) - set(ENROLLMENT_CODES)
    if unknown:
        raise TypeError(f"unknown enrollment code column(s): {sorted(unknown)}")
    return {k.upper(): v for k, v in codes.items()}


class Sis:
    """A SIS database under construction; rows are inserted at once with SQLAlchemy Core."""

    def __init__(self, engine: sa.Engine, lea: str | None = LEA):
        self.engine = engine
        create_sis_schema(engine)
        self.md = sa.MetaData()
        self.md.reflect(engine)
        self._next: dict[str, int] = {}
        self._dcid: dict[int, int] = {}
        if lea is not None:
            self.add_pref("districtnumber", lea, school=0)

    # -- plumbing -------------------------------------------------------------------
    def table(self, name: str) -> sa.Table:
        """The table, whatever case the database folded its name to."""
        for key, table in self.md.tables.items():
            if key.lower() == name.lower():
                return table
        raise KeyError(name)

    def _new_id(self, table: str, start: int) -> int:
        n = self._next.get(table, start)
        self._next[table] = n + 1
        return n

    def insert(self, table_name: str, rows: Iterable[dict[str, Any]]) -> None:
        table = self.table(table_name)
        by_lower = {c.name.lower(): c.name for c in table.columns}
        converted = []
        for row in rows:
            out = {}
            for key, value in row.items():
                col = by_lower[key.lower()]
                if isinstance(table.columns[col].type, sa.Date) and isinstance(value, str) and value:
                    value = date.fromisoformat(value)
                out[col] = value
            converted.append(out)
        if converted:
            with self.engine.begin() as conn:
                conn.execute(table.insert(), converted)

    # -- builders -------------------------------------------------------------------
    def add_pref(self, name: str, value: str, school: int = 0) -> None:
        self.insert("PREFS", [dict(ID=self._new_id("PREFS", 1), NAME=name, VALUE=value, SCHOOLID=school)])

    def add_school(
        self,
        number: int,
        cds: str | None,
        *,
        name: str | None = None,
        subdistrict: str | None = None,
        excluded: bool = False,
        calendar: bool = True,
        first: DateLike = FIRST_DAY,
        last: DateLike = LAST_DAY,
        holidays: Iterable[DateLike] = DEFAULT_HOLIDAYS,
    ) -> int:
        """A school (SCHOOL_NUMBER `number`, CDS code `cds`) with its year term and calendar."""
        self.insert("SCHOOLS", [dict(
            ID=self._new_id("SCHOOLS", 1), SCHOOL_NUMBER=number, NAME=name or f"School {number}",
            ALTERNATE_SCHOOL_NUMBER=cds, SUBDISTRICT=subdistrict, STATE_EXCLUDEFROMREPORTING=int(excluded),
        )])
        self.insert("TERMS", [dict(
            ID=self._new_id("TERMS", 1), SCHOOLID=number, YEARID=YEAR_ID,
            FIRSTDAY=as_date(first), LASTDAY=as_date(last), ISYEARREC=1,
        )])
        if calendar:
            self.add_calendar(number, first, last, holidays=holidays)
        return number

    def add_calendar(
        self, school: int, first: DateLike, last: DateLike, holidays: Iterable[DateLike] = ()
    ) -> None:
        """One CALENDAR_DAY row per day first..last: weekdays in session except the holidays."""
        off = {as_date(h) for h in holidays}
        day, end = as_date(first), as_date(last)
        assert day is not None and end is not None
        rows = []
        while day <= end:
            in_session = day.weekday() < 5 and day not in off
            rows.append(dict(ID=self._new_id("CALENDAR_DAY", 1), SCHOOLID=school, DATE_VALUE=day,
                             INSESSION=int(in_session)))
            day += timedelta(days=1)
        self.insert("CALENDAR_DAY", rows)

    def add_student(
        self,
        student_id: int,
        *,
        number: str | None = None,
        ssid: str | None = "default",
        first: str = "Ana",
        last: str = "Lopez",
        dob: DateLike = "2015-03-14",
        gender: str | None = "F",
        school: int = 100,
        grade: int = 4,
        entry: DateLike = FIRST_DAY,
        exit: DateLike = None,  # noqa: A002 - PowerSchool's name; exclusive (the day after the last day)
        enroll_status: int | None = None,
        excluded: bool = False,
        legal_first: str | None = None,
        legal_last: str | None = None,
        legal_gender: str | None = None,
        ca_row: bool | None = None,
        **codes: str | None,
    ) -> int:
        """A student whose current enrollment (the STUDENTS row) is at `school`.

        SSID defaults to ssid_of(id), STUDENT_NUMBER to number_of(id); DCID is id + 1000.
        An S_CA_STU_X row is added when a legal value is given (or ca_row=True).
        codes: the enrollment's CALPADS codes (enrollmentstatus, exitcode, completionstatus, receiver_school,
        uccsu_reqs_met), left out of the insert when not given (a SIS without the columns still works)."""
        dcid = student_id + DCID_OFFSET
        self._dcid[student_id] = dcid
        if enroll_status is None:
            enroll_status = 0 if exit is None else 2
        self.insert("STUDENTS", [dict(
            ID=student_id, DCID=dcid, STUDENT_NUMBER=number or number_of(student_id),
            STATE_STUDENTNUMBER=ssid_of(student_id) if ssid == "default" else ssid,
            FIRST_NAME=first, LAST_NAME=last, DOB=as_date(dob), GENDER=gender, SCHOOLID=school,
            GRADE_LEVEL=grade, ENTRYDATE=as_date(entry), EXITDATE=as_date(exit), ENROLL_STATUS=enroll_status,
            STATE_EXCLUDEFROMREPORTING=int(excluded), **_codes(codes),
        )])
        if ca_row or (ca_row is None and any(v is not None for v in (legal_first, legal_last, legal_gender))):
            self.insert("S_CA_STU_X", [dict(STUDENTSDCID=dcid, LEGALFIRSTNAME=legal_first,
                                            LEGALLASTNAME=legal_last, LEGALGENDER=legal_gender)])
        return student_id

    def add_reenrollment(
        self,
        student_id: int,
        school: int,
        entry: DateLike,
        exit: DateLike,  # noqa: A002 - exclusive, as on STUDENTS
        *,
        excluded: bool = False,
        grade: int = 4,
        **codes: str | None,
    ) -> int:
        """An earlier (or concurrent) enrollment; codes as for add_student."""
        rid = self._new_id("REENROLLMENTS", 1)
        self.insert("REENROLLMENTS", [dict(
            ID=rid, STUDENTID=student_id, SCHOOLID=school, GRADE_LEVEL=grade, ENTRYDATE=as_date(entry),
            EXITDATE=as_date(exit), STATE_EXCLUDEFROMREPORTING=int(excluded), **_codes(codes),
        )])
        return rid

    def add_program(
        self,
        student_id: int,
        school: int,
        code: str | None,
        *,
        membership: str | None = "3",
        start: DateLike = FIRST_DAY,
        end: DateLike = None,
        program_id: int | None = None,
        cpa: str | None = None,
        migrant: str | None = None,
        disability: str | None = None,
        dsea: str | None = None,
        dwelling: str | None = None,
        unaccompanied: str | None = None,
        runaway: str | None = None,
        sped_exit: str | None = None,
    ) -> int:
        """An S_CA_STU_CALPADSPROGRAMS_C row; returns its ID (default: 501, 502, ...)."""
        pid = program_id if program_id is not None else self._new_id("PROGRAMS", 501)
        self.insert("S_CA_STU_CALPADSPROGRAMS_C", [dict(
            ID=pid, STUDENTSDCID=self._dcid.get(student_id, student_id + DCID_OFFSET), SCHOOLID=school,
            PROGRAMCODE=code, PROGRAMMEMBERSHIPCODE=membership, PROGRAMSTARTDATE=as_date(start),
            PROGRAMENDDATE=as_date(end), PARTNERSHIPACADEMYID=cpa, MIGRANTSTUDENTID=migrant,
            PRMARYDISABILITYCODE=disability, DISTSPEDACCOUNTABILITY=dsea, DWELLINGTYPE=dwelling,
            UNACCOMPANIEDYOUTH=unaccompanied, RUNAWAYYOUTH=runaway, SPEDEXITCODE=sped_exit,
        )])
        return pid

    def add_service(self, student_id: int, school: int, code: str | None, on: DateLike) -> int:
        """A Title I (122) service on one day."""
        sid = self._new_id("SERVICES", 1)
        self.insert("S_CA_CALPADS_STUDENTSERVICES_C", [dict(
            ID=sid, STUDENTSDCID=self._dcid.get(student_id, student_id + DCID_OFFSET), SCHOOLID=school,
            SERVICECODE=code, SERVICEDATE=as_date(on),
        )])
        return sid


def drop_enrollment_codes(engine: sa.Engine, tables: tuple[str, ...] = ("STUDENTS", "REENROLLMENTS")) -> None:
    """Make the database a SIS without the contract v2 enrollment code columns (ALTER TABLE ... DROP COLUMN,
    on SQLite and PostgreSQL)."""
    insp = sa.inspect(engine)
    names = {t.lower(): t for t in insp.get_table_names()}
    with engine.begin() as conn:
        for table in tables:
            name = names[table.lower()]
            have = {c["name"].lower(): c["name"] for c in insp.get_columns(name)}
            for col in ENROLLMENT_CODES:
                if col in have:
                    conn.exec_driver_sql(f"ALTER TABLE {name} DROP COLUMN {have[col]}")
