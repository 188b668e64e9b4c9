"""OneRoster 1.2 rostering (schools, students, enrollments) over OAuth2: no programs, so no SPRG.

IMS OneRoster Rostering Service REST/JSON Binding 1.2 (Final, 2022-09-19),
https://www.imsglobal.org/sites/default/files/spec/oneroster/v1p2/rostering-restbinding/OneRosterv1p2RosteringService_RESTBindv1p0.html
- base path {host}/ims/oneroster/rostering/v1p2; GET /schools -> {"orgs": [...]},
  GET /students -> {"users": [...]}, GET /enrollments -> {"enrollments": [...]};
- paging with ``limit`` and ``offset``; the total in the ``X-Total-Count`` header;
- OAuth 2.0 client credentials, Bearer token; read scope
  https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly.
OneRoster has no CALPADS program memberships, Title I services, school calendars
or attendance: ``SPRG_GAP`` says what a district must supply from another source.

For SENR, STAS and LEAP a district supplies what OneRoster lacks as a folder of CSV files in the contract
tables' shape, named by the connection's extra ``supplementary_folder`` (calpads.sources.supplementary:
schools.csv, students.csv, enrollment_codes.csv, calendar_day.csv, attendance_code.csv, attendance.csv), and
its Reporting LEA code as the extra ``reporting_lea``. ``pull_tables`` maps the roster onto the contract:
- schools are the orgs of type school, numbered by schools.csv through their CDS code (the org's
  ``identifier``); an org schools.csv does not list stops the pull (nothing is dropped);
- a student's key is the Local Student ID (the user's ``identifier``, digits): STUDENTS.ID, DCID and
  STUDENT_NUMBER alike, as the supplementary files key students; SSID, birth date, gender, grade, legal names
  and the state-reporting exclusion come from students.csv;
- each student's school enrollments (class enrollments at the same school with the same dates are one) are
  its enrollments: the latest entry is the current one (STUDENTS), the others REENROLLMENTS; their grade and
  CALPADS codes come from enrollment_codes.csv (a line that matches no enrollment stops the pull);
- calendars, attendance codes and daily attendance come from the folder, attendance aggregated as it is read
  (calpads.sources.attendance_pages).
What neither OneRoster nor the folder gives fails the run once, before anything is built
(calpads.sources.api_tables.check_supplied).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calpads.run_scope import RunScope
from calpads.sources.api_common import (
    AccessDenied,
    ApiConnection,
    ApiSourceError,
    FlowCheck,
    HttpClient,
    MissingSourceData,
    OAuthClientCredentials,
    PageStore,
    RetryPolicy,
    paged_fetch,
)
from calpads.sources.api_tables import RECORD_TYPES, check_supplied, needs_attendance, supplied_by
from calpads.sources.attendance_pages import AttendancePages
from calpads.sources.sql_sis import ENROLLMENT_CODES
from calpads.sources.supplementary import SupplementaryFileError, SupplementaryFolder

log = logging.getLogger(__name__)

SOURCE = "oneroster"
BASE_PATH = "/ims/oneroster/rostering/v1p2"
READ_SCOPE = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"

SPRG_GAP = (
    "OneRoster carries rostering and enrollment only, so it cannot feed the Student Program (SPRG) file. "
    "These SPRG fields must come from another source (the SIS database, the PowerSchool or Aeries API, or a "
    "program export): Education Program Code (13), Education Program Membership Code (14), Membership Start "
    "and End Dates (15, 16), Education Service Academic Year and Education Service Code (17, 18: Title I "
    "services), California Partnership Academy ID (19), Migrant Student ID (20), Primary Disability Code (21), "
    "District of Special Education Accountability (22), Homeless Dwelling Type Code, Unaccompanied Youth and "
    "Runaway Youth Indicators (23-25). Also missing for the record selection: the SSID (7) unless the "
    "district publishes it as a OneRoster userId, legal names and legal gender (9, 10, 12), school calendars "
    "(in-session days, for enrollment last days) and the state-reporting exclusion flags. Choose source sql, "
    "powerschool_api or aeries_api for SPRG."
)

COLLECTIONS = {  # path -> (response key, flattened columns)
    "schools": ("orgs", ["sourcedId", "status", "name", "type", "identifier", "parent"]),
    "students": ("users", ["sourcedId", "status", "givenName", "familyName", "identifier", "userIds", "roles"]),
    "enrollments": ("enrollments", ["sourcedId", "status", "role", "user", "class", "school", "beginDate",
                                    "endDate"]),
}


@dataclass
class OneRosterSettings:
    base_url: str
    client_id: str
    client_secret: str
    token_url: str = ""
    scope: str = READ_SCOPE
    page_size: int = 1000
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool | str = True
    supplementary_folder: str = ""     # the district's supplementary CSV files (calpads.sources.supplementary)
    reporting_lea: str = ""            # the 7-digit Reporting LEA code (OneRoster has no district CDS code)

    @classmethod
    def from_connection(cls, conn: ApiConnection) -> OneRosterSettings:
        extra = conn.extra
        host = conn.base_url
        if not host or not conn.login or not conn.password:
            raise ApiSourceError("The OneRoster connection needs the base URL (host), the client ID (login) and "
                                 "the client secret (password).")
        return cls(host, conn.login, conn.password, token_url=str(extra.get("token_url") or f"{host}/oauth/token"),
                   scope=str(extra.get("scope") or READ_SCOPE), page_size=int(extra.get("page_size") or 1000),
                   policy=RetryPolicy.from_extra(extra), verify=extra.get("verify", True),
                   supplementary_folder=str(extra.get("supplementary_folder") or ""),
                   reporting_lea=str(extra.get("reporting_lea") or "").strip())


def _flat(value: Any) -> Any:
    """References ({"sourcedId": ..}) to their id; lists and other objects to JSON text."""
    if isinstance(value, dict) and "sourcedId" in value:
        return value["sourcedId"]
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


class OneRosterClient:
    source = SOURCE

    @classmethod
    def for_connection(cls, conn: ApiConnection) -> OneRosterClient:
        """The client the vendor's hook (calpads_airflow.hooks) builds from its connection."""
        return cls(OneRosterSettings.from_connection(conn))

    def __init__(self, settings: OneRosterSettings, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.http = HttpClient(settings.base_url, settings.policy, verify=settings.verify, sleep=sleep)
        self.token = OAuthClientCredentials(self.http, settings.token_url, settings.client_id, settings.client_secret,
                                            scope=settings.scope)
        self.http.auth = self.token
        self.stores: list[PageStore] = []

    def page(self, collection: str, page: int, limit: int) -> list[dict[str, Any]]:
        key, cols = COLLECTIONS[collection]
        body = self.http.get_json(f"{BASE_PATH}/{collection}", params={"limit": limit, "offset": (page - 1) * limit})
        return [{c: _flat(rec.get(c)) for c in cols} for rec in body.get(key) or []]

    def fetch(self, collection: str, work_dir: str | Path) -> list[dict[str, Any]]:
        """A whole collection, paged with limit/offset, checkpointed. OneRoster 1.2 lets a server cap ``limit``
        and gives the collection's size in X-Total-Count: the first page tells the cap, and the collection is
        paged at it (until X-Total-Count, or a short page without it), so a capped server never cuts it short."""
        key, cols = COLLECTIONS[collection]
        size = self.settings.page_size
        resp = self.http.send("GET", f"{BASE_PATH}/{collection}", params={"limit": size, "offset": 0})
        try:
            records = resp.json().get(key) or []
        except ValueError as exc:
            raise ApiSourceError(f"OneRoster {collection}: the server did not answer with JSON") from exc
        first = [{c: _flat(rec.get(c)) for c in cols} for rec in records]
        total = resp.headers.get("X-Total-Count", "").strip()
        count = int(total) if total.isdigit() else None
        if 0 < len(first) < size and (count is None or len(first) < count):
            size = len(first)   # the server's cap
        store = PageStore.for_dataset(work_dir, SOURCE, collection,
                                      {"server": self.settings.base_url, "collection": collection, "limit": size})
        self.stores.append(store)
        # The first page is the one just read (offset 0, as many rows as the page size): never asked twice.
        return paged_fetch(store, count=count, page_size=size, columns=cols, label=f"OneRoster {collection}",
                           fetch_page=lambda page: first if page == 1 else self.page(collection, page, size))

    def pull_roster(self, work_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
        return {c: self.fetch(c, work_dir) for c in COLLECTIONS}

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.http.get_json(f"{BASE_PATH}/schools", params={"limit": 1})
        except ApiSourceError as exc:
            return False, str(exc)
        return True, "Connected to OneRoster 1.2 (rostering)."

    def check_flows(self, flows: list[str]) -> list[FlowCheck]:
        out = []
        for flow in flows:
            if flow == "read_enrollment":
                for collection in COLLECTIONS:
                    resource = f"OneRoster {collection}"
                    try:
                        self.http.get_json(f"{BASE_PATH}/{collection}", params={"limit": 1})
                        out.append(FlowCheck(flow, resource, True, f"The pipeline can read {resource}."))
                    except AccessDenied:
                        out.append(FlowCheck(flow, resource, False, (
                            f"The pipeline cannot read the {collection} ({resource}): ask district IT to grant "
                            f"the OneRoster app read access to {collection} (scope roster-core.readonly)")))
            elif flow == "read_attendance":
                out.append(FlowCheck(flow, "OneRoster", False, "OneRoster has no attendance: the pipeline reads it "
                                     "from the supplementary attendance.csv and attendance_code.csv (connection "
                                     "extra supplementary_folder), the SIS database, or the PowerSchool or Aeries "
                                     "API."))
            elif flow == "read_programs":
                out.append(FlowCheck(flow, "OneRoster", False, SPRG_GAP))
            else:
                out.append(FlowCheck(flow, "OneRoster", False, "OneRoster rostering is read-only: participation "
                                     "cannot be written back through it; use the SIS's own API."))
        return out


    def pull_enrollments(self, work_dir: str | Path) -> list[dict[str, Any]]:
        """School enrollments in the staging model's words: Local Student ID, CDS school code, entry and
        exit dates (exclusive, as the SIS keeps them), one row per OneRoster school enrollment."""
        roster = self.pull_roster(work_dir)
        local_id = {s["sourcedId"]: s["identifier"] for s in roster["students"]}
        cds = {o["sourcedId"]: o["identifier"] or None for o in roster["schools"]}
        return [{"local_student_id": local_id.get(e["user"]), "school_code": cds.get(e["school"]),
                 "entrydate": e["beginDate"], "exitdate": e["endDate"]}
                for e in roster["enrollments"] if e["role"] == "student" and e["status"] != "tobedeleted"]

    # -- the contract tables for SENR, STAS and LEAP -------------------------------------------
    def supplementary(self) -> SupplementaryFolder | None:
        folder = self.settings.supplementary_folder
        return SupplementaryFolder(folder) if folder else None

    def supplied(self, folder: SupplementaryFolder | None) -> set[str]:
        """What OneRoster and the district's supplementary folder give (api_tables.check_supplied)."""
        have = supplied_by({"students": ["student_number", "first_name", "last_name", "schoolid", "entrydate",
                                         "exitdate"],
                            "reenrollments": ["studentid", "schoolid", "entrydate", "exitdate"]})
        if self.settings.reporting_lea:
            have.add("PREFS")
        if folder is not None:
            have |= supplied_by(folder.supplied())
        return have

    def pull_tables(self, scope: RunScope, work_dir: str | Path, program_codes: list[str] | None = None, *,
                    attendance: bool = True, record_types: tuple[str, ...] = RECORD_TYPES) -> dict[str, Any]:
        """The contract tables SENR, STAS and LEAP read, from the roster and the supplementary folder (the rules
        in the module docstring). OneRoster gives no SPRG tables (SPRG_GAP)."""
        if "SPRG" in record_types:
            raise MissingSourceData(SPRG_GAP)
        folder = self.supplementary()
        check_supplied("OneRoster", self.supplied(folder), record_types, SUPPLEMENT_HOW)
        roster = self.pull_roster(work_dir)

        def rows(name: str) -> list[dict[str, Any]]:
            return folder.rows(name) if folder is not None else []

        schools = school_rows(roster["schools"], rows("schools.csv"))
        number_of = {s["sourcedId"]: s["school_number"] for s in schools}
        students, reenrollments = enrollment_rows(roster, number_of, folder)
        legal = ("legalfirstname", "legallastname", "legalgender")
        stu_x = [{"studentsdcid": s["dcid"], **{c: s[c] for c in legal}} for s in students]
        students = [{k: v for k, v in s.items() if k not in legal} for s in students]
        tables: dict[str, Any] = {
            "prefs": [{"id": 0, "name": "districtnumber", "value": self.settings.reporting_lea or None,
                       "schoolid": 0}],
            "schools": [{k: v for k, v in s.items() if k != "sourcedId"} for s in schools],
            "calendar_day": [{"id": i, **r} for i, r in enumerate(rows("calendar_day.csv"), 1)],
            "students": students, "reenrollments": reenrollments,
            "s_ca_stu_x": stu_x,
            "attendance_code": rows("attendance_code.csv"),
        }
        if attendance and folder is not None and needs_attendance(record_types) and folder.has("attendance.csv"):
            codes = {int(c["id"]) for c in tables["attendance_code"]}
            agg = AttendancePages(tables, scope)
            page: list[dict[str, Any]] = []
            for line, row in folder.lines("attendance.csv"):   # streamed: never the whole file in memory
                if int(row["attendance_codeid"]) not in codes:
                    raise SupplementaryFileError(
                        f"attendance.csv line {line} (studentid {row['studentid']}, att_date {row['att_date']}): "
                        f"attendance_codeid {row['attendance_codeid']} is not an id of attendance_code.csv.")
                page.append(row)
                if len(page) >= 10_000:
                    agg.add(page)
                    page = []
            agg.add(page)
            tables.update(agg.frames())
        return tables

    def close(self) -> None:
        self.http.close()


SUPPLEMENT_HOW = (
    "OneRoster carries rostering only: export the missing tables from the SIS as CSV files into the folder named "
    "by the connection's extra supplementary_folder, and give the Reporting LEA code as the extra reporting_lea "
    "(files and columns: docs/sis-sources.md, \"OneRoster supplementary files\")."
)


def school_rows(orgs: list[dict[str, Any]], listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SCHOOLS rows: each OneRoster school org, numbered by the schools.csv line of its CDS code."""
    by_cds = {r["alternate_school_number"]: r for r in listed}
    out = []
    for o in orgs:
        if o.get("type") not in (None, "school") or o.get("status") == "tobedeleted":
            continue
        r = by_cds.get((o.get("identifier") or "").strip())
        if r is None:
            raise SupplementaryFileError(
                f"schools.csv has no line for the OneRoster school {o['sourcedId']} (CDS code "
                f"{o.get('identifier') or '(none)'}): add its SIS school number, or correct the org's identifier.")
        out.append({"sourcedId": o["sourcedId"], "id": int(r["school_number"]),
                    "school_number": int(r["school_number"]), "name": o.get("name"),
                    "alternate_school_number": r["alternate_school_number"], "subdistrict": r.get("subdistrict"),
                    "state_excludefromreporting": int(r["state_excludefromreporting"] or 0)})
    return out


def enrollment_rows(roster: dict[str, list[dict[str, Any]]], number_of: dict[str, int],
                    folder: SupplementaryFolder | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """STUDENTS (current enrollment) and REENROLLMENTS rows from the roster and students.csv /
    enrollment_codes.csv."""
    people = {r["student_number"]: r for r in (folder.rows("students.csv") if folder else [])}
    codes = {(r["student_number"], int(r["school_number"]), r["entrydate"]): r
             for r in (folder.rows("enrollment_codes.csv") if folder else [])}
    users = {}
    for u in roster["students"]:
        ident = (u.get("identifier") or "").strip()
        if not ident.isdigit():
            raise ApiSourceError(f"OneRoster user {u['sourcedId']} has no Local Student ID of digits as its "
                                 "identifier: the supplementary files key students by it.")
        users[u["sourcedId"]] = (ident, u)
    spans: dict[str, list[tuple[Any, ...]]] = {}
    for e in roster["enrollments"]:
        if e.get("role") != "student" or e.get("status") == "tobedeleted" or e.get("user") not in users:
            continue
        if e.get("school") not in number_of:
            raise ApiSourceError(f"OneRoster enrollment {e['sourcedId']} is at an org that is not a school of the "
                                 "roster.")
        spans.setdefault(e["user"], [])
        span = (number_of[e["school"]], e.get("beginDate"), e.get("endDate"))
        if span not in spans[e["user"]]:
            spans[e["user"]].append(span)
    used: set[tuple[str, int, str]] = set()
    students, reenrollments = [], []
    for user, rows in spans.items():
        ident, u = users[user]
        sid = int(ident)
        person = people.get(ident, {})
        ordered = sorted(rows, key=lambda r: (r[1] or "", r[2] or "9999"))

        def enrollment(school: int, entry: str | None, exit_: str | None, ident: str = ident,
                       person: dict[str, Any] = person) -> dict[str, Any]:
            key = (ident, school, entry or "")
            c = codes.get(key, {})
            if c:
                used.add(key)
            return {"schoolid": school, "entrydate": entry, "exitdate": exit_,
                    "grade_level": c.get("grade_level") or person.get("grade_level"),
                    **{k: c.get(k) for k in ENROLLMENT_CODES}}

        school, entry, exit_ = ordered[-1]
        students.append({"id": sid, "dcid": sid, "student_number": ident,
                         "state_studentnumber": person.get("state_studentnumber"),
                         "first_name": u.get("givenName"), "last_name": u.get("familyName"),
                         "dob": person.get("dob"), "gender": person.get("gender"), "enroll_status": None,
                         "state_excludefromreporting": int(person.get("state_excludefromreporting") or 0),
                         "legalfirstname": person.get("legalfirstname"), "legallastname": person.get("legallastname"),
                         "legalgender": person.get("legalgender"), **enrollment(school, entry, exit_)})
        for school, entry, exit_ in ordered[:-1]:
            reenrollments.append({"studentid": sid, "state_excludefromreporting": 0,
                                  **enrollment(school, entry, exit_)})
    unknown = sorted(set(people) - {users[u][0] for u in spans})
    if unknown:
        raise SupplementaryFileError(
            f"students.csv: {len(unknown)} student(s) have no OneRoster student enrollment, e.g. student_number "
            f"{unknown[0]}: correct the line or the roster (nothing is ignored).")
    idle = len(users) - len(spans)
    if idle:
        log.warning("OneRoster: %d student(s) have no school enrollment in the roster: no enrollment to report",
                    idle)
    stray = sorted(set(codes) - used)
    if stray:
        ident, school, entry = stray[0]
        raise SupplementaryFileError(
            f"enrollment_codes.csv: {len(stray)} line(s) match no OneRoster enrollment, e.g. student_number {ident}, "
            f"school_number {school}, entrydate {entry}: correct the line or the roster (nothing is ignored).")
    students.sort(key=lambda s: s["id"])
    reenrollments.sort(key=lambda r: (r["studentid"], r["entrydate"] or ""))
    for i, r in enumerate(reenrollments, 1):
        r["id"] = i
    return students, reenrollments
