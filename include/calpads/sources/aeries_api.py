"""Aeries SIS API v5 (AERIES-CERT), mapped onto the contract tables: the same SprgPull as the SQL source.

API used (Aeries Knowledge Base):
- every request carries the vendor certificate in the ``AERIES-CERT`` header (case sensitive) and may
  name the school-year database with ``?DatabaseYear=YYYY`` (the year the school year starts); errors
  come as HTTP >= 400 with ``{"Message": ...}``:
  https://support.aeries.com/support/solutions/articles/14000113681-aeries-api-building-a-request
- the v5 end point list (``/api/v5/systeminfo`` needs no certificate; ``/api/v5/schools/{SchoolCode}``
  with the code optional; ``/api/v5/schools/{SchoolCode}/calendar``):
  https://support.aeries.com/support/solutions/articles/14000070569
- students per school, ``StartingRecord``/``EndingRecord`` (inclusive record counts) for paging, and
  programs per school (``/students/{StudentID}/programs``; StudentID 0 = every student, as the AeriesApi
  PowerShell module calls it):
  https://support.aeries.com/support/solutions/articles/14000113683-aeries-api-student-related-end-points
- enrollment history per school and year (``/api/v5/schools/{SchoolCode}/enrollment/0/year/{yyyy}``):
  https://support.aeries.com/support/solutions/articles/14000113684-aeries-api-attendance-and-enrollment-related-end-points

Identifiers (the mapping decision): Aeries has one student key, the district-wide StudentID (formerly
PermanentID). It is the record key, the key that program rows carry, and what Aeries reports to CALPADS
as the Local Student ID. So it fills the contract's STUDENTS.ID, DCID and STUDENT_NUMBER alike, and the
SPRG Local Record ID of an Aeries district reads ``<StudentID>.<program record sequence>``. Aeries has no
DCID: nothing downstream needs one beyond joining students to their programs.

Fields the public excerpts above do not show, which this module assumes; confirm them against the
district's Aeries (``GET /api/v5/schools/{sc}/students/{id}``) before go-live. They live in one place,
``FIELDS`` below: the school's ``StateCountyID``/``StateDistrictID``/``StateSchoolID`` and ``DoNotReport``
(LOC.DNR); the student's legal name and gender, ``ExcludeFromStateReporting``; the calendar's ``Holiday``
(blank on a school day); the program record's ``SequenceNumber`` and the CALPADS fields carried in its
``ExtendedProperties``; Title I services (program 122) as program records whose extended property
``ServiceCode`` is set. Aeries has no sub-district on the school record: the connection's extra
``subdistricts`` ({"SchoolCode": "name"}) supplies it where a district runs by sub-district.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calpads.run_scope import RunScope
from calpads.sources.api_common import (
    AccessDenied,
    ApiSourceError,
    FlowCheck,
    HttpClient,
    PageStore,
    RetryPolicy,
    StaticHeader,
    connection_extras,
    paged_fetch,
    read_denied_message,
)
from calpads.sources.sprg_frames import assemble_sprg_pull

SOURCE = "aeries_api"
API = "/api/v5"
DEFAULT_PAGE_SIZE = 1000
WHOLE = 10**9   # "page size" of an end point that answers in one response (a one-page checkpoint)

# Aeries field -> contract column, per data set: the one place the mapping lives.
FIELDS: dict[str, dict[str, str]] = {
    "schools": {"SchoolCode": "school_number", "StateSchoolID": "alternate_school_number",
                "DoNotReport": "state_excludefromreporting", "StateCountyID": "county", "StateDistrictID": "district"},
    "calendar": {"SchoolCode": "schoolid", "CalendarDate": "date_value", "Holiday": "insession"},
    "students": {"StudentID": "id", "StateStudentID": "state_studentnumber", "FirstName": "first_name",
                 "LastName": "last_name", "Birthdate": "dob", "Gender": "gender", "SchoolCode": "schoolid",
                 "SchoolEnterDate": "entrydate", "SchoolLeaveDate": "exitdate",
                 "ExcludeFromStateReporting": "state_excludefromreporting",
                 "LegalFirstName": "legalfirstname", "LegalLastName": "legallastname",
                 "LegalGender": "legalgender"},
    "enrollment": {"StudentID": "studentid", "SchoolCode": "schoolid", "EnterDate": "entrydate",
                   "LeaveDate": "exitdate", "ExcludeFromStateReporting": "state_excludefromreporting"},
    "programs": {"SequenceNumber": "id", "StudentID": "studentsdcid", "ProgramCode": "programcode",
                 "EligibilityStartDate": "eligibilitystartdate", "EligibilityEndDate": "eligibilityenddate",
                 "ParticipationStartDate": "participationstartdate", "ParticipationEndDate": "participationenddate"},
}
# CALPADS program fields Aeries keeps as the program record's extended properties.
PROGRAM_EXTENDED = {"MembershipCode": "programmembershipcode", "PartnershipAcademyID": "partnershipacademyid",
                    "MigrantStudentID": "migrantstudentid", "PrimaryDisabilityCode": "prmarydisabilitycode",
                    "DistrictOfSpecialEducationAccountability": "distspedaccountability",
                    "DwellingType": "dwellingtype", "UnaccompaniedYouth": "unaccompaniedyouth",
                    "RunawayYouth": "runawayyouth", "SpecialEducationExitCode": "spedexitcode",
                    "ServiceCode": "servicecode"}
DATE_COLUMNS = {"date_value", "dob", "entrydate", "exitdate", "eligibilitystartdate", "eligibilityenddate",
                "participationstartdate", "participationenddate"}

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

    @classmethod
    def from_connection(cls, conn: Any) -> AeriesSettings:
        """From an Airflow Connection: host = the Aeries URL up to /api, password = the AERIES-CERT certificate."""
        extra = connection_extras(conn)
        host = (conn.host or "").rstrip("/")
        if host and "://" not in host:
            host = f"https://{host}"
        if host.endswith("/api"):
            host = host[:-4]
        if not host or not conn.password:
            raise ApiSourceError("The Aeries connection needs the district's Aeries URL (host) and the vendor "
                                 "certificate (password, from Aeries: Security > API Security).")
        subdistricts = extra.get("subdistricts") or {}
        if isinstance(subdistricts, str):   # typed into the connection form as JSON text
            subdistricts = json.loads(subdistricts)
        return cls(base_url=host, certificate=conn.password, database_year=str(extra.get("database_year") or ""),
                   page_size=int(extra.get("page_size") or DEFAULT_PAGE_SIZE), policy=RetryPolicy.from_extra(extra),
                   verify=extra.get("verify", True),
                   subdistricts={str(k): str(v) for k, v in subdistricts.items()},
                   pull_timeout=float(extra.get("pull_timeout") or 4 * 3600.0))


def _date(v: Any) -> str | None:
    """Aeries dates are 'YYYY-MM-DDT00:00:00' (or null)."""
    return None if v in (None, "") else str(v)[:10]


def _flag(v: Any) -> int:
    return 1 if v in (True, 1, "1", "Y", "y", "true", "True") else 0


def contract_row(dataset: str, rec: dict[str, Any]) -> dict[str, Any]:
    """One Aeries record as contract-column text (see FIELDS)."""
    out: dict[str, Any] = {}
    for name, col in FIELDS[dataset].items():
        v = rec.get(name)
        if col in DATE_COLUMNS:
            v = _date(v)
        elif col == "state_excludefromreporting":
            v = _flag(v)
        elif col == "insession":
            v = 0 if str(v or "").strip() else 1
        out[col] = v
    if dataset == "programs":
        props = {p.get("Name"): p.get("Value") for p in rec.get("ExtendedProperties") or []}
        out.update({col: props.get(name) for name, col in PROGRAM_EXTENDED.items()})
    return out


class AeriesClient:
    source = SOURCE

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

    def get(self, path: str, **params: Any) -> Any:
        body = self.http.get_json(f"{API}/{path}", params=self._params(**params))
        return body if isinstance(body, list) else [body] if body else []

    def fetch(self, dataset: str, path: str, work_dir: str | Path, *, paged: bool = False,
              deadline: float | None = None, **params: Any) -> list[dict[str, Any]]:
        """One end point's records as contract rows, checkpointed; students are paged by record count."""
        size = self.settings.page_size if paged else WHOLE
        cols = list(FIELDS[dataset].values()) + (list(PROGRAM_EXTENDED.values()) if dataset == "programs" else [])
        store = PageStore.for_dataset(work_dir, SOURCE, dataset, {
            "server": self.settings.base_url, "path": path, "params": self._params(**params), "size": size})
        self.stores.append(store)

        def page(n: int) -> list[dict[str, Any]]:
            extra = {"StartingRecord": (n - 1) * size + 1, "EndingRecord": n * size} if paged else {}
            return [contract_row(dataset, r) for r in self.get(path, **params, **extra)]

        return paged_fetch(store, count=None, page_size=size, columns=cols, fetch_page=page, deadline=deadline,
                           label=f"Aeries {dataset} ({path})")

    # -- what the pipeline needs ------------------------------------------------------------
    def schools(self) -> list[dict[str, Any]]:
        return self.get("schools")

    def test_connection(self) -> tuple[bool, str]:
        try:
            info = self.get("systeminfo")
            n = len(self.schools())
        except AccessDenied:
            return False, ("Aeries refused the certificate: check the AERIES-CERT certificate in the connection "
                           "(Aeries: Security > API Security).")
        except ApiSourceError as exc:
            return False, str(exc)
        version = (info[0] if info else {}).get("AeriesVersion", "unknown")
        return True, f"Connected to Aeries {version}; {n} schools visible."

    def check_flows(self, flows: list[str]) -> list[FlowCheck]:
        out: list[FlowCheck] = []
        school = next((s.get("SchoolCode") for s in self._safe_schools()), None)
        for flow in flows:
            if flow == "write_participation":
                out.append(FlowCheck(flow, "Student Programs", None, (
                    "Aeries cannot confirm write access without writing: ask district IT to grant the vendor "
                    "Insert/Update on the \"Student Programs\" security area, then test one write.")))
                continue
            for area, kind in FLOW_AREAS[flow]:
                path = {"schools": "schools", "calendar": f"schools/{school}/calendar",
                        "students": f"schools/{school}/students", "enrollment": f"schools/{school}/enrollment/0",
                        "attendance": f"schools/{school}/attendance/0",
                        "programs": f"schools/{school}/students/0/programs"}[kind]
                probe = {"StartingRecord": 1, "EndingRecord": 1} if kind == "students" else {}
                resp = self.http.send("GET", f"{API}/{path}", params=self._params(**probe), ok=(401, 403, 404))
                if resp.status_code == 200:
                    out.append(FlowCheck(flow, area, True, f"The pipeline can read {area} in Aeries."))
                else:
                    out.append(FlowCheck(flow, area, False, read_denied_message(
                        area.lower(), f"the \"{area}\" security area", "Aeries vendor certificate")))
        return out

    def _safe_schools(self) -> list[dict[str, Any]]:
        try:
            return self.schools()
        except ApiSourceError:
            return []

    def pull_tables(self, scope: RunScope, work_dir: str | Path, with_services: bool = True) -> dict[str, list]:
        """The contract tables the SPRG pull reads, from Aeries."""
        deadline = time.monotonic() + self.settings.pull_timeout
        year = scope.academic_year[:4]
        self.database_year = self.settings.database_year or year
        schools = self.fetch("schools", "schools", work_dir, deadline=deadline)
        codes = sorted({int(s["school_number"]) for s in schools})
        t: dict[str, list[dict[str, Any]]] = {k: [] for k in (
            "prefs", "schools", "calendar_day", "students", "reenrollments", "s_ca_stu_x",
            "s_ca_stu_calpadsprograms_c", "s_ca_calpads_studentservices_c")}
        for s in schools:
            s["subdistrict"] = self.settings.subdistricts.get(str(s["school_number"]))
            t["schools"].append(s)
        # The Reporting LEA: county + district code of the reportable schools (one district, one code).
        lea = next((f"{s['county'] or ''}{s['district'] or ''}" for s in sorted(
            schools, key=lambda s: int(s["school_number"])) if str(s["state_excludefromreporting"]) == "0"), "")
        t["prefs"].append({"id": 0, "name": "districtnumber", "value": lea or None, "schoolid": 0})
        history: list[dict[str, Any]] = []
        for sc in codes:
            t["calendar_day"] += self.fetch("calendar", f"schools/{sc}/calendar", work_dir, deadline=deadline)
            for s in self.fetch("students", f"schools/{sc}/students", work_dir, paged=True, deadline=deadline):
                t["students"].append(s)
            history += self.fetch("enrollment", f"schools/{sc}/enrollment/0/year/{year}", work_dir, deadline=deadline)
            for p in self.fetch("programs", f"schools/{sc}/students/0/programs", work_dir, deadline=deadline):
                p["schoolid"] = sc
                if p.get("servicecode") not in (None, ""):
                    if with_services:
                        t["s_ca_calpads_studentservices_c"].append({
                            "id": p["id"], "studentsdcid": p["studentsdcid"], "schoolid": sc,
                            "servicecode": p["servicecode"], "servicedate": p["participationstartdate"]})
                    continue
                t["s_ca_stu_calpadsprograms_c"].append(_program(p))
        t["students"], t["s_ca_stu_x"] = _students(t["students"])
        current = {(s["id"], s["schoolid"], s["entrydate"]) for s in t["students"]}
        t["reenrollments"] = [dict(h, id=i) for i, h in enumerate(history, 1)
                              if (h["studentid"], h["schoolid"], h["entrydate"]) not in current]
        return t

    def pull_sprg(self, scope: RunScope, program_codes: list[str], work_dir: str | Path) -> Any:
        tables = self.pull_tables(scope, work_dir, with_services="122" in program_codes)
        return assemble_sprg_pull(tables, scope, program_codes)

    def close(self) -> None:
        self.http.close()


def _program(p: dict[str, Any]) -> dict[str, Any]:
    """Eligibility-only records (membership 1) carry eligibility dates; the others participation dates."""
    participating = p.get("participationstartdate") is not None
    start = p["participationstartdate"] if participating else p.get("eligibilitystartdate")
    end = p["participationenddate"] if participating else p.get("eligibilityenddate")
    return {**{k: v for k, v in p.items() if not k.startswith(("eligibility", "participation"))},
            "programstartdate": start, "programenddate": end}


def _students(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One STUDENTS row per StudentID (Aeries returns a record per school attended: the latest entry wins)
    and the legal names as S_CA_STU_X."""
    by_id: dict[Any, dict[str, Any]] = {}
    for r in records:
        cur = by_id.get(r["id"])
        if cur is None or (r["entrydate"] or "") > (cur["entrydate"] or ""):
            by_id[r["id"]] = r
    students, stu_x = [], []
    for sid, r in sorted(by_id.items(), key=lambda kv: int(kv[0])):
        students.append({**r, "dcid": sid, "student_number": str(sid)})
        if any(r.get(c) is not None for c in ("legalfirstname", "legallastname", "legalgender")):
            stu_x.append({"studentsdcid": sid, "legalfirstname": r.get("legalfirstname"),
                          "legallastname": r.get("legallastname"), "legalgender": r.get("legalgender")})
    return students, stu_x
