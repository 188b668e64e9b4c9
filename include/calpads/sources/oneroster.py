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
    MissingSourceData,
    OAuthClientCredentials,
    PageStore,
    RetryPolicy,
    connection_base_url,
    connection_extras,
    paged_fetch,
)
from calpads.sources.sql_sis import SprgPull

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

    @classmethod
    def from_connection(cls, conn: Any) -> OneRosterSettings:
        extra = connection_extras(conn)
        host = connection_base_url(conn)
        if not host or not conn.login or not conn.password:
            raise ApiSourceError("The OneRoster connection needs the base URL (host), the client ID (login) and "
                                 "the client secret (password).")
        return cls(host, conn.login, conn.password, token_url=str(extra.get("token_url") or f"{host}/oauth/token"),
                   scope=str(extra.get("scope") or READ_SCOPE), page_size=int(extra.get("page_size") or 1000),
                   policy=RetryPolicy.from_extra(extra), verify=extra.get("verify", True))


def _flat(value: Any) -> Any:
    """References ({"sourcedId": ..}) to their id; lists and other objects to JSON text."""
    if isinstance(value, dict) and "sourcedId" in value:
        return value["sourcedId"]
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


class OneRosterClient:
    source = SOURCE

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
        """A whole collection, paged with limit/offset until a short page, checkpointed."""
        _, cols = COLLECTIONS[collection]
        size = self.settings.page_size
        store = PageStore.for_dataset(work_dir, SOURCE, collection,
                                      {"server": self.settings.base_url, "collection": collection, "limit": size})
        self.stores.append(store)
        return paged_fetch(store, count=None, page_size=size, columns=cols, label=f"OneRoster {collection}",
                           fetch_page=lambda page: self.page(collection, page, size))

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
                out.append(FlowCheck(flow, "OneRoster", False, "OneRoster has no attendance: the pipeline needs "
                                     "the SIS database or the PowerSchool or Aeries API for attendance."))
            elif flow == "read_programs":
                out.append(FlowCheck(flow, "OneRoster", False, SPRG_GAP))
            else:
                out.append(FlowCheck(flow, "OneRoster", False, "OneRoster rostering is read-only: participation "
                                     "cannot be written back through it; use the SIS's own API."))
        return out

    def pull_sprg(self, scope: RunScope, program_codes: list[str], work_dir: str | Path) -> SprgPull:
        raise MissingSourceData(SPRG_GAP)

    def pull_tables(self, scope: RunScope, work_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
        """The contract tables OneRoster can fill: none yet (it has no district number, school calendars,
        programs or attendance; its enrollments are pull_enrollments'). The staging adapter names the gap."""
        return {}

    def pull_enrollments(self, work_dir: str | Path) -> list[dict[str, Any]]:
        """School enrollments in the staging model's words: Local Student ID, CDS school code, entry and
        exit dates (exclusive, as the SIS keeps them), one row per OneRoster school enrollment."""
        roster = self.pull_roster(work_dir)
        local_id = {s["sourcedId"]: s["identifier"] for s in roster["students"]}
        cds = {o["sourcedId"]: o["identifier"] or None for o in roster["schools"]}
        return [{"local_student_id": local_id.get(e["user"]), "school_code": cds.get(e["school"]),
                 "entrydate": e["beginDate"], "exitdate": e["endDate"]}
                for e in roster["enrollments"] if e["role"] == "student" and e["status"] != "tobedeleted"]

    def close(self) -> None:
        self.http.close()
