"""Aeries SIS API v5 (AERIES-CERT), mapped onto the contract tables: the SprgPull of the SQL source.

API used (Aeries Knowledge Base):
- every request carries the vendor certificate in the ``AERIES-CERT`` header (case sensitive) and may
  name the school-year database with ``?DatabaseYear=YYYY`` (the year the school year starts); errors
  come as HTTP >= 400 with ``{"Message": ...}``:
  https://support.aeries.com/support/solutions/articles/14000113681-aeries-api-building-a-request
- the v5 end point list (``/api/v5/systeminfo`` needs no certificate; ``/api/v5/schools/{SchoolCode}``
  with the code optional; ``/api/v5/schools/{SchoolCode}/calendar``):
  https://support.aeries.com/support/solutions/articles/14000070569
- students per school, ``StartingRecord``/``EndingRecord`` (inclusive record counts) for paging; programs
  per school (``/students/{StudentID}/programs``, StudentID 0 = every student at the school, as the
  AeriesApi PowerShell module calls it):
  https://support.aeries.com/support/solutions/articles/14000113683-aeries-api-student-related-end-points
- enrollment history per school and year (``/api/v5/schools/{SchoolCode}/enrollment/0/year/{yyyy}``):
  https://support.aeries.com/support/solutions/articles/14000113684-aeries-api-attendance-and-enrollment-related-end-points
- each school's absence codes (``/api/v5/schools/{SchoolCode}/AbsenceCodes``) and Student Attendance
  (``/api/v5/schools/{SchoolCode}/attendance/{StudentID}``, StudentID 0 = every student, ``StartDate`` and
  ``EndDate`` as yyyyMMdd, inclusive; each record is a student with ``AttendanceDays``, each day its
  ``CalendarDate`` and ``AllDayAttendanceCode``, as Aeries's own AeriesApi PowerShell module,
  Get-AeriesStudentAttendance, calls it): the school's quick reference,
  https://support.aeries.com/support/solutions/articles/14000070569, lists both end points
Field names and meanings are the documentation's (School: DoNotReport = "not to be included in
federal/state reporting (e.g., CALPADS)", StateCountyID/StateDistrictID/StateSchoolID = the CDS parts;
Calendar: HolidayCode "@ = School not in session ... # = School Holiday ... $ = Staff Development";
Student: FirstName/LastName = the legal names, FirstNameAlias/LastNameAlias; Programs: ProgramCode,
EligibilityStartDate/EndDate, ParticipationStartDate/EndDate).

How Aeries's shape becomes the contract's (each rule here, once):
- **One student key.** Aeries keys a student by the district-wide StudentID (formerly PermanentID): the
  record key, the key on program rows, and what Aeries reports as the Local Student ID. It fills the
  contract's STUDENTS.ID, DCID and STUDENT_NUMBER alike.
- **Programs belong to the student, not a school.** The per-school end point lists the programs of every
  student with a record at that school; duplicates across schools are one program. Its school of
  attendance is the school of the student's enrollment on the later of the program's start and the
  report's first day (the latest entry wins for concurrent enrollments); with none, the current school.
- **Membership code** (CALPADS 1 Eligible, 3 Participating): 3 when the record has a participation start
  date, else 1; the dates are the participation dates, else the eligibility dates.
- **Program record id** (the second part of the Local Record ID): Aeries returns none, so it is the
  program code and start date, ``<code><yyyymmdd>`` (Local Record ID ``100005.14420250813``): stable from
  run to run and unique per student.
- **Not in the Aeries v5 API** (``SPRG_GAP``): CPA ID, Migrant ID, Primary Disability, DSEA, the homeless
  fields, the special-education exit code, Title I services (program 122's service codes), the legal
  gender and a per-student state-reporting exclusion. They stay blank: the quality gate holds back the
  records whose rules need them (113 without a CPA ID, 135 without a Migrant ID) with the rule's message;
  Title I memberships (122) give no record, as PowerSchool's Student Program Records Report gives one per
  service in the range; and the pull's log says which fields Aeries could not supply.
- Aeries keeps no sub-district on the school record: the connection's extra ``subdistricts``
  ({"SchoolCode": "name"}) supplies it where a district runs by sub-district.
- **The enrollment's CALPADS codes.** The enrollment history's ExitReasonCode (one per enrollment, the
  current one included) becomes EXITCODE on REENROLLMENTS and STUDENTS. It is the district's Aeries exit
  code, which Aeries translates to the CALPADS code on its CALPADS Code Translation page when it builds its
  own extracts: the connection's extra ``exit_reasons`` ({"Aeries code": "CALPADS code"}) does the same
  here, and a code it does not list is passed as it is (the quality gate's code-set rule reports one that
  is not a CALPADS code).
- **Daily attendance.** Aeries keeps one all-day code per student and day (ATT.AL); a day without one is a day
  present. The API gives no code's CALPADS category: the connection's extra ``absence_codes``
  ({"Aeries code": "CALPADS category"}) does, as Aeries's CALPADS translation does; its codes of category
  PRESENT or IN_SCHOOL_SUSPENSION count as present, the others as absences. Without it, STAS and LEAP fail
  before anything is fetched (``ABSENCE_CODES_HOW``). Attendance is read one school and one month per request
  and aggregated as it arrives (calpads.sources.attendance_pages); period attendance is not read (STAS counts
  daily attendance). The v5 end points carry no enrollment status, completion status, expected
  receiver school or UC/CSU indicator (``SENR_GAP``): they stay blank, and the pull's log says so.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from calpads.run_scope import RunScope
from calpads.sources.api_common import (
    AccessDenied,
    ApiConnection,
    ApiSourceError,
    FlowCheck,
    HttpClient,
    PageStore,
    RetryPolicy,
    StaticHeader,
    iter_pages,
    paged_fetch,
    read_denied_message,
)
from calpads.sources.api_tables import RECORD_TYPES, TABLE_COLUMNS, check_supplied, needs_attendance, supplied_by
from calpads.sources.attendance_pages import DAILY, AttendancePages, fetch_range
from calpads.sources.sql_sis import ENROLLMENT_CODES

log = logging.getLogger(__name__)

SOURCE = "aeries_api"
API = "/api/v5"
DEFAULT_PAGE_SIZE = 1000
WHOLE = 10**9   # "page size" of an end point that answers in one response (a one-page checkpoint)
NOT_IN_SESSION = {"@", "#", "$"}   # HolidayCode: not in session, school holiday, staff development

# Aeries field -> staging column, per end point: the one place the mapping lives.
FIELDS: dict[str, dict[str, str]] = {
    "schools": {"SchoolCode": "school_number", "StateSchoolID": "alternate_school_number",
                "DoNotReport": "state_excludefromreporting", "StateCountyID": "county", "StateDistrictID": "district"},
    "calendar": {"SchoolCode": "schoolid", "CalendarDate": "date_value", "HolidayCode": "holidaycode"},
    "students": {"StudentID": "id", "StateStudentID": "state_studentnumber", "FirstName": "legalfirstname",
                 "LastName": "legallastname", "FirstNameAlias": "first_name_alias",
                 "LastNameAlias": "last_name_alias", "Birthdate": "dob", "Gender": "gender",
                 "SchoolCode": "schoolid", "SchoolEnterDate": "entrydate", "SchoolLeaveDate": "exitdate",
                 "Grade": "grade_level"},
    "enrollment": {"StudentID": "studentid", "SchoolCode": "schoolid", "EnterDate": "entrydate",
                   "LeaveDate": "exitdate", "ExitReasonCode": "exitcode", "Grade": "grade_level"},
    "absence_codes": {"SchoolCode": "schoolid", "Code": "att_code", "Description": "description"},
    "programs": {"StudentID": "studentsdcid", "ProgramCode": "programcode",
                 "EligibilityStartDate": "eligibilitystartdate", "EligibilityEndDate": "eligibilityenddate",
                 "ParticipationStartDate": "participationstartdate", "ParticipationEndDate": "participationenddate"},
}
# Student Attendance: one record per student with an AttendanceDays list; one row per day (see attendance_rows)
ATTENDANCE_FIELDS = {"StudentID": "studentid", "SchoolCode": "schoolid", "CalendarDate": "att_date",
                     "AllDayAttendanceCode": "att_code"}
ATTENDANCE_MONTHS_PER_REQUEST = 1   # Student Attendance is asked for one month of one school at a time
# CALPADS categories whose codes still count the student present (the rest are absences)
PRESENT_CATEGORIES = {"PRESENT", "IN_SCHOOL_SUSPENSION"}
DATE_COLUMNS = {"date_value", "att_date", "dob", "entrydate", "exitdate", "eligibilitystartdate", "eligibilityenddate",
                "participationstartdate", "participationenddate"}

SPRG_GAP = (
    "The Aeries v5 API does not carry these Student Program fields, so they are blank in files built from "
    "it: California Partnership Academy ID (19, program 113), Migrant Student ID (20, program 135), Primary "
    "Disability Code and District of Special Education Accountability (21, 22, program 144), the homeless "
    "fields (23-25, program 191), Title I service codes (17, 18, program 122), the legal gender and a "
    "per-student state-reporting exclusion. Records whose rules need them are held back by the quality gate; "
    "Title I (122) memberships give no record without their services."
)

SENR_GAP = (
    "The Aeries v5 API carries no Enrollment Status, Student School Completion Status, Expected Receiver School "
    "or UC/CSU requirements indicator (SENR 1.23, 1.27-1.29): they stay blank in data read from it (1.23 is sent "
    "as 10, primary). Exit reasons come from the enrollment history's exit code (ExitReasonCode)."
)

ABSENCE_CODES_HOW = (
    "Aeries's API gives each school's absence codes but not their CALPADS category: list them in the Aeries "
    "connection's extra absence_codes, {\"Aeries code\": \"CALPADS category\"} (EXCUSED, UNEXCUSED, "
    "OUT_OF_SCHOOL_SUSPENSION, IN_SCHOOL_SUSPENSION, INDEPENDENT_STUDY, PRESENT; see docs/sis-sources.md)."
)

# Aeries security areas per data flow, in the words the integration team uses.
FLOW_AREAS = {
    "read_enrollment": (("School Information", "schools"), ("School Calendar", "calendar"),
                        ("Student Data", "students"), ("Enrollment History", "enrollment")),
    "read_attendance": (("Attendance", "attendance"),),
    "read_programs": (("Student Programs", "programs"),),
}


@dataclass
class AeriesSettings:
    base_url: str
    certificate: str
    database_year: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool | str = True
    subdistricts: dict[str, str] = field(default_factory=dict)
    pull_timeout: float = 4 * 3600.0
    exit_reasons: dict[str, str] = field(default_factory=dict)   # Aeries exit code -> CALPADS exit reason code
    absence_codes: dict[str, str] = field(default_factory=dict)  # Aeries all-day code -> CALPADS category

    @classmethod
    def from_connection(cls, conn: ApiConnection) -> AeriesSettings:
        """From the connection (as calpads_airflow.hooks.aeries reads it): host = the Aeries URL up to /api,
        password = the AERIES-CERT certificate."""
        extra = conn.extra
        host = conn.base_url
        if not host or not conn.password:
            raise ApiSourceError("The Aeries connection needs the district's Aeries URL (host) and the vendor "
                                 "certificate (password, from Aeries: Security > API Security).")
        subdistricts = extra.get("subdistricts") or {}
        if isinstance(subdistricts, str):   # typed into the connection form as JSON text
            subdistricts = json.loads(subdistricts)
        exit_reasons = extra.get("exit_reasons") or {}
        if isinstance(exit_reasons, str):
            exit_reasons = json.loads(exit_reasons)
        absence_codes = extra.get("absence_codes") or {}
        if isinstance(absence_codes, str):
            absence_codes = json.loads(absence_codes)
        return cls(base_url=host, certificate=conn.password, database_year=str(extra.get("database_year") or ""),
                   page_size=int(extra.get("page_size") or DEFAULT_PAGE_SIZE), policy=RetryPolicy.from_extra(extra),
                   verify=extra.get("verify", True),
                   subdistricts={str(k): str(v) for k, v in subdistricts.items()},
                   pull_timeout=float(extra.get("pull_timeout") or 4 * 3600.0),
                   exit_reasons={str(k).strip(): str(v).strip() for k, v in exit_reasons.items()},
                   absence_codes={str(k).strip(): str(v).strip().upper() for k, v in absence_codes.items()})


def _date(v: Any) -> str | None:
    """Aeries dates are 'YYYY-MM-DDT00:00:00' (or null)."""
    return None if v in (None, "") else str(v)[:10]


def _flag(v: Any) -> int:
    return 1 if v in (True, 1, "1", "Y", "y", "true", "True") else 0


def staging_row(dataset: str, rec: dict[str, Any]) -> dict[str, Any]:
    """One Aeries record under its staging column names (see FIELDS)."""
    out: dict[str, Any] = {}
    for name, col in FIELDS[dataset].items():
        v = rec.get(name)
        if col in DATE_COLUMNS:
            v = _date(v)
        elif col == "state_excludefromreporting":
            v = _flag(v)
        out[col] = v
    return out


class AeriesClient:
    source = SOURCE

    @classmethod
    def for_connection(cls, conn: ApiConnection) -> AeriesClient:
        """The client the vendor's hook (calpads_airflow.hooks) builds from its connection."""
        return cls(AeriesSettings.from_connection(conn))

    def __init__(self, settings: AeriesSettings, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.http = HttpClient(settings.base_url, settings.policy, verify=settings.verify, sleep=sleep)
        self.http.auth = StaticHeader("AERIES-CERT", settings.certificate)
        self.stores: list[PageStore] = []
        self.database_year = settings.database_year   # a pull reads its academic year's database

    def _params(self, **kw: Any) -> dict[str, Any]:
        if self.database_year:
            kw["DatabaseYear"] = self.database_year
        return kw

    def get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        body = self.http.get_json(f"{API}/{path}", params=self._params(**params))
        return body if isinstance(body, list) else [body] if body else []

    def fetch(self, dataset: str, path: str, work_dir: str | Path, *, paged: bool = False,
              deadline: float | None = None) -> list[dict[str, Any]]:
        """One end point's records as staging rows, checkpointed; students are paged by record count."""
        size = self.settings.page_size if paged else WHOLE
        cols = list(FIELDS[dataset].values())
        store = PageStore.for_dataset(work_dir, SOURCE, dataset, {
            "server": self.settings.base_url, "path": path, "params": self._params(), "size": size})
        self.stores.append(store)

        def page(n: int) -> list[dict[str, Any]]:
            extra = {"StartingRecord": (n - 1) * size + 1, "EndingRecord": n * size} if paged else {}
            return [staging_row(dataset, r) for r in self.get(path, **extra)]

        return paged_fetch(store, count=None, page_size=size, columns=cols, fetch_page=page, deadline=deadline,
                           label=f"Aeries {dataset} ({path})")

    # -- what the pipeline needs ------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        try:
            info = self.get("systeminfo")
            n = len(self.get("schools"))
        except AccessDenied:
            return False, ("Aeries refused the certificate: check the AERIES-CERT certificate in the connection "
                           "(Aeries: Security > API Security).")
        except ApiSourceError as exc:
            return False, str(exc)
        version = (info[0] if info else {}).get("AeriesVersion", "unknown")
        return True, f"Connected to Aeries {version}; {n} schools visible."

    def check_flows(self, flows: list[str]) -> list[FlowCheck]:
        out: list[FlowCheck] = []
        try:
            school = next((s.get("SchoolCode") for s in self.get("schools")), 0)
        except ApiSourceError:
            school = 0
        paths = {"schools": "schools", "calendar": f"schools/{school}/calendar",
                 "students": f"schools/{school}/students", "enrollment": f"schools/{school}/enrollment/0",
                 "attendance": f"schools/{school}/attendance/0", "programs": f"schools/{school}/students/0/programs"}
        for flow in flows:
            if flow == "write_participation":
                out.append(FlowCheck(flow, "Student Programs", None, (
                    "Aeries cannot confirm write access without writing: ask district IT to grant the vendor "
                    "Insert/Update on the \"Student Programs\" security area, then test one write.")))
                continue
            for area, kind in FLOW_AREAS[flow]:
                probe = {"StartingRecord": 1, "EndingRecord": 1} if kind == "students" else {}
                resp = self.http.send("GET", f"{API}/{paths[kind]}", params=self._params(**probe), ok=(401, 403, 404))
                if resp.status_code == 200:
                    out.append(FlowCheck(flow, area, True, f"The pipeline can read {area} in Aeries."))
                else:
                    out.append(FlowCheck(flow, area, False, read_denied_message(
                        area.lower(), f"the \"{area}\" security area", "Aeries vendor certificate")))
        return out

    def pull_tables(self, scope: RunScope, work_dir: str | Path, program_codes: list[str] | None = None, *,
                    attendance: bool = True, record_types: tuple[str, ...] = RECORD_TYPES) -> dict[str, Any]:
        """The contract tables the CALPADS files read, from Aeries (the rules in the module docstring), and, with
        ``attendance``, the all-day attendance codes aggregated month by month (calpads.sources.attendance_pages).
        program_codes is not used: Aeries has no Title I services (SPRG_GAP)."""
        deadline = time.monotonic() + self.settings.pull_timeout
        attendance = attendance and needs_attendance(record_types)
        if attendance or record_types:
            check_supplied("Aeries", self.supplied(), record_types, ABSENCE_CODES_HOW)
        year = scope.academic_year[:4]
        self.database_year = self.settings.database_year or year
        schools = self.fetch("schools", "schools", work_dir, deadline=deadline)
        codes = sorted(int(s["school_number"]) for s in schools)
        calendar: list[dict[str, Any]] = []
        students: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        absence_codes: list[dict[str, Any]] = []
        programs: dict[tuple[Any, ...], dict[str, Any]] = {}
        for sc in codes:
            calendar += self.fetch("calendar", f"schools/{sc}/calendar", work_dir, deadline=deadline)
            students += self.fetch("students", f"schools/{sc}/students", work_dir, paged=True, deadline=deadline)
            history += self.fetch("enrollment", f"schools/{sc}/enrollment/0/year/{year}", work_dir,
                                  deadline=deadline)
            for p in self.fetch("programs", f"schools/{sc}/students/0/programs", work_dir, deadline=deadline):
                programs.setdefault(tuple(p.values()), p)   # listed once per school the student attended
            if attendance:
                absence_codes += self.fetch("absence_codes", f"schools/{sc}/AbsenceCodes", work_dir,
                                            deadline=deadline)
        stu, stu_x = _students(students)
        history = [{**h, **enrollment_codes(h.get("exitcode"), self.settings.exit_reasons)} for h in history]
        codes_of = {(h["studentid"], h["schoolid"], h["entrydate"]): h for h in history}
        stu = [{**s, **{c: codes_of.get((s["id"], s["schoolid"], s["entrydate"]), {}).get(c) for c in ENROLLMENT_CODES}}
               for s in stu]
        current = {(s["id"], s["schoolid"], s["entrydate"]) for s in stu}
        reenrollments = [{**h, "id": i, "state_excludefromreporting": 0} for i, h in enumerate(history, 1)
                         if (h["studentid"], h["schoolid"], h["entrydate"]) not in current]
        enrollments = [(s["id"], s["schoolid"], s["entrydate"], s["exitdate"]) for s in stu] + [
            (r["studentid"], r["schoolid"], r["entrydate"], r["exitdate"]) for r in reenrollments]
        log.info("Aeries: %d schools, %d students, %d programs read.", len(codes), len(stu), len(programs))
        log.warning(SPRG_GAP)
        log.warning(SENR_GAP)
        lea = next((f"{s['county'] or ''}{s['district'] or ''}" for s in sorted(
            schools, key=lambda s: int(s["school_number"])) if str(s["state_excludefromreporting"]) == "0"), "")
        tables: dict[str, Any] = {
            "prefs": [{"id": 0, "name": "districtnumber", "value": lea or None, "schoolid": 0}],
            "schools": [{**s, "subdistrict": self.settings.subdistricts.get(str(s["school_number"]))}
                        for s in schools],
            "calendar_day": [{**c, "insession": 0 if (c["holidaycode"] or "").strip() in NOT_IN_SESSION else 1}
                             for c in calendar],
            "students": stu, "reenrollments": reenrollments, "s_ca_stu_x": stu_x,
            "s_ca_stu_calpadsprograms_c": program_rows(list(programs.values()), enrollments, stu,
                                                       scope.start_date.isoformat()),
            "s_ca_calpads_studentservices_c": [],
        }
        if attendance:
            tables["attendance_code"] = attendance_code_rows(absence_codes, self.settings.absence_codes)
            code_ids = {(c["schoolid"], c["att_code"]): c["id"] for c in tables["attendance_code"]}
            agg = AttendancePages(tables, scope)
            first, last = fetch_range(scope)
            for sc in codes:
                for page in self.attendance_pages(sc, first, last, work_dir, deadline):
                    agg.add(attendance_rows(page, code_ids))
            tables.update(agg.frames())
        return tables

    def supplied(self) -> set[str]:
        """What this source carries (api_tables.check_supplied): every table the files need; the attendance
        codes' CALPADS category and presence only through the connection's ``absence_codes``."""
        have = supplied_by({t: c for t, c in TABLE_COLUMNS.items() if t != "attendance_code"})
        have |= {"ATTENDANCE", "ATTENDANCE_CODE"}
        if self.settings.absence_codes:
            have |= {"ATTENDANCE_CODE.CALPADS_CATEGORY", "ATTENDANCE_CODE.PRESENCE_STATUS_CD"}
        return have

    def attendance_pages(self, school: int, first: str, last: str, work_dir: str | Path,
                         deadline: float | None) -> Iterator[list[dict[str, Any]]]:
        """Student Attendance of one school, one calendar month per request (a checkpointed page each): rows
        of (studentid, schoolid, att_date, att_code), one per student-day with an all-day code."""
        months = month_ranges(first, last)
        cols = list(ATTENDANCE_FIELDS.values())
        path = f"schools/{school}/attendance/0"
        store = PageStore.for_dataset(work_dir, SOURCE, f"attendance-{school}", {
            "server": self.settings.base_url, "path": path, "params": self._params(), "months": months})
        self.stores.append(store)

        def page(n: int) -> list[dict[str, Any]]:
            start, end = months[n - 1]
            return day_rows(self.get(path, StartDate=start.replace("-", ""), EndDate=end.replace("-", "")))

        return iter_pages(store, count=len(months), page_size=1, columns=cols, fetch_page=page, deadline=deadline,
                          label=f"Aeries attendance ({path})")


    def close(self) -> None:
        self.http.close()


def month_ranges(first: str, last: str) -> list[tuple[str, str]]:
    """[first, last] (ISO dates) cut into calendar months, as (start, end) ISO pairs."""
    out = []
    d = date.fromisoformat(first)
    end = date.fromisoformat(last)
    while d <= end:
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        out.append((d.isoformat(), min(end, nxt - timedelta(days=1)).isoformat()))
        d = nxt
    return out


def day_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Student Attendance records -> one row per AttendanceDays entry with an all-day code (a blank code is a
    day present: no row, as ATTENDANCE holds none for it)."""
    out = []
    for rec in records:
        for day in rec.get("AttendanceDays") or []:
            code = (day.get("AllDayAttendanceCode") or "").strip()
            if code:
                out.append({"studentid": rec.get("StudentID"), "schoolid": day.get("SchoolCode", rec.get("SchoolCode")),
                            "att_date": _date(day.get("CalendarDate")), "att_code": code})
    return out


def attendance_code_rows(absence_codes: list[dict[str, Any]], categories: dict[str, str]) -> list[dict[str, Any]]:
    """ATTENDANCE_CODE rows from each school's Absence Codes: the category from the connection's
    ``absence_codes`` (a code it does not list: blank, counted as the uncategorised absence of stas.yaml);
    presence Present for PRESENT_CATEGORIES, else Absent (an Aeries all-day code marks an absence)."""
    out = []
    for i, c in enumerate(sorted(absence_codes, key=lambda c: (int(c["schoolid"]), str(c["att_code"]))), 1):
        category = categories.get(str(c["att_code"]).strip())
        out.append({"id": i, "schoolid": int(c["schoolid"]), "att_code": str(c["att_code"]).strip(),
                    "presence_status_cd": "Present" if category in PRESENT_CATEGORIES else "Absent",
                    "calpads_category": category})
    return out


def attendance_rows(rows: list[dict[str, Any]], code_ids: dict[tuple[int, str], int]) -> list[dict[str, Any]]:
    """Day rows in the ATTENDANCE shape (daily mode; the code's id at the row's school). A code the school's
    Absence Codes do not list has no id: the row is dropped, as the SQL source's join drops it, and logged."""
    out, unknown = [], 0
    for r in rows:
        cid = code_ids.get((int(r["schoolid"]), str(r["att_code"])))
        if cid is None:
            unknown += 1
            continue
        out.append({"studentid": r["studentid"], "schoolid": r["schoolid"], "att_date": r["att_date"],
                    "attendance_codeid": cid, "att_mode_code": DAILY})
    if unknown:
        log.warning("Aeries: %d attendance day(s) carry an all-day code their school's Absence Codes do not list: "
                    "not counted", unknown)
    return out


def enrollment_codes(aeries_exit_code: Any, exit_reasons: dict[str, str]) -> dict[str, Any]:
    """An enrollment's contract v2 codes from Aeries: EXITCODE translated by the connection's ``exit_reasons``
    (a code it does not list passes as it is); the codes Aeries's API does not carry are None (SENR_GAP)."""
    code = str(aeries_exit_code).strip() if aeries_exit_code not in (None, "") else ""
    out: dict[str, Any] = dict.fromkeys(ENROLLMENT_CODES)
    out["exitcode"] = exit_reasons.get(code, code) or None
    return out


def _students(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One STUDENTS row per StudentID (Aeries returns a record per school attended: the latest entry wins),
    preferred names from the aliases, and the legal names as S_CA_STU_X."""
    by_id: dict[Any, dict[str, Any]] = {}
    for r in records:
        cur = by_id.get(r["id"])
        if cur is None or (r["entrydate"] or "") > (cur["entrydate"] or ""):
            by_id[r["id"]] = r
    students, stu_x = [], []
    for sid, r in sorted(by_id.items(), key=lambda kv: int(kv[0])):
        students.append({**r, "dcid": sid, "student_number": str(sid), "state_excludefromreporting": 0,
                         "first_name": r["first_name_alias"] or r["legalfirstname"],
                         "last_name": r["last_name_alias"] or r["legallastname"]})
        stu_x.append({"studentsdcid": sid, "legalfirstname": r["legalfirstname"],
                      "legallastname": r["legallastname"], "legalgender": None})
    return students, stu_x


def program_record_id(code: str | None, start: str | None) -> int:
    """<code><yyyymmdd> as a number (a stable Local Record ID part). A code that is not 1-3 digits, which the
    gate holds back (code set), gets a 4-digit stand-in from its text, so one bad record never stops the pull."""
    code = (code or "").strip()
    prefix = code if code.isdigit() and len(code) <= 3 else str(1000 + zlib.crc32(code.encode()) % 9000)
    return int(prefix + (start or "0000-00-00").replace("-", ""))


def program_rows(programs: list[dict[str, Any]], enrollments: list[tuple[Any, Any, Any, Any]],
                 students: list[dict[str, Any]], range_start: str) -> list[dict[str, Any]]:
    """Aeries program records as S_CA_STU_CALPADSPROGRAMS_C rows (membership, dates, school, record id)."""
    by_student: dict[Any, list[tuple[Any, Any, Any]]] = {}
    for sid, school, entry, exit_ in enrollments:
        by_student.setdefault(sid, []).append((entry, exit_, school))
    current = {s["id"]: s["schoolid"] for s in students}
    out = []
    for p in programs:
        participating = p["participationstartdate"] is not None
        start = p["participationstartdate"] if participating else p["eligibilitystartdate"]
        end = p["participationenddate"] if participating else p["eligibilityenddate"]
        on = max(start or range_start, range_start)
        open_then = sorted((e for e in by_student.get(p["studentsdcid"], [])
                            if e[0] is not None and e[0] <= on and (e[1] is None or e[1] > on)), key=lambda e: e[0])
        school = open_then[-1][2] if open_then else current.get(p["studentsdcid"])
        out.append({"id": program_record_id(p["programcode"], start),
                    "studentsdcid": p["studentsdcid"], "schoolid": school, "programcode": p["programcode"],
                    "programmembershipcode": "3" if participating else "1",
                    "programstartdate": start, "programenddate": end})
    return out
