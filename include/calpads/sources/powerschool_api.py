"""PowerSchool SIS over its plugin API (OAuth2), producing the same SprgPull as the SQL source.

The district installs a data-access plugin whose plugin.xml grants read access to
the tables the pipeline reads (calpads/sources/powerschool_sis.sql); the plugin's client
ID and secret go into the Airflow connection (hook: calpads_airflow.hooks.powerschool).

API used (PowerSchool developer documentation, as quoted by PowerSchool's own
admin guide and the customization reference):
- POST /oauth/access_token (Basic client_id:client_secret, grant_type=client_credentials)
  https://ps.powerschool-docs.com/pssis-admin/latest/view-oauth-client-credentials
- GET /ws/v1/metadata -> {"metadata": {"schema_table_query_max_page_size": n, ...}}
  (the plugin's maximum page size; https://support.powerschool.com/developer/#/page/data-access)
- GET /ws/schema/table/{table}?projection=a,b&q=col==v;col=ge=v&page=n&pagesize=m
  -> {"name": table, "record": [{"id": .., "tables": {table: {col: "text", ...}}}]}
- GET /ws/schema/table/{table}/count?q=... -> {"count": n}
- GET /ws/schema/table/{table}/metadata?expansions=access -> columns with their access
- POST /ws/schema/query/{name}?page=n&pagesize=m (PowerQuery; JSON body = its arguments),
  POST /ws/schema/query/{name}/count
  (endpoint list: https://mba-link.com/wp-content/uploads/2025/04/Customization-Reference-25.4.zip,
  "API - General"; q operators ==, =gt=, =ge=, =lt=, =le= joined with ';':
  https://git.qipusong.site/tulsaschoolsdata/ps_utilities/blob/main/PS_API_NOTES.md)
Daily attendance (ATTENDANCE, ~85M rows a year in a large district) is read with the same table API,
filtered on the server to daily rows in the year (``att_mode_code==ATT_ModeDaily;att_date=ge=..;att_date=le=..``)
and aggregated page by page (calpads.sources.attendance_pages); ATTENDANCE_CODE comes whole.
PowerSchool hands every value over as text and leaves out null columns; the
contract's column types are restored in calpads.staging.contract (rows_table).

The enrollment's CALPADS codes (ENROLLMENTSTATUS, EXITCODE, COMPLETIONSTATUS, RECEIVER_SCHOOL,
UCCSU_REQS_MET on STUDENTS and REENROLLMENTS; PowerSchool keeps an exit code on every enrollment) are
fetched with those tables where the server has them: the table metadata is read once per pull, and a
column the server lacks stays blank with a warning (a projection naming it would be refused).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
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
    OAuthClientCredentials,
    PageStore,
    RetryPolicy,
    iter_pages,
    paged_fetch,
    read_denied_message,
    write_denied_message,
)
from calpads.sources.api_tables import RECORD_TYPES, TABLE_COLUMNS, check_supplied, needs_attendance, supplied_by
from calpads.sources.attendance_pages import ATTENDANCE_COLUMNS, DAILY, AttendancePages, fetch_range
from calpads.sources.sprg_frames import SPRG_TABLE_COLUMNS
from calpads.sources.sql_sis import ENROLLMENT_CODES

log = logging.getLogger(__name__)

SOURCE = "powerschool_api"
CODE_TABLES = ("students", "reenrollments")   # the tables that carry the enrollment's CALPADS codes
DEFAULT_PAGE_SIZE = 1000

# What each data flow reads or writes, with the words the coordinator uses.
TABLE_WORDS = {
    "PREFS": "district settings table", "SCHOOLS": "schools table", "CALENDAR_DAY": "school calendar table",
    "STUDENTS": "students table", "REENROLLMENTS": "re-enrollments table",
    "S_CA_STU_X": "California student fields table", "S_CA_STU_CALPADSPROGRAMS_C": "CALPADS programs table",
    "S_CA_CALPADS_STUDENTSERVICES_C": "CALPADS student services table", "ATTENDANCE": "attendance table",
    "ATTENDANCE_CODE": "attendance codes table",
}
FLOW_TABLES = {
    "read_enrollment": ("PREFS", "SCHOOLS", "CALENDAR_DAY", "STUDENTS", "REENROLLMENTS", "S_CA_STU_X"),
    "read_attendance": ("ATTENDANCE", "ATTENDANCE_CODE"),
    "read_programs": ("S_CA_STU_CALPADSPROGRAMS_C", "S_CA_CALPADS_STUDENTSERVICES_C"),
}
FULL_TABLES = {**TABLE_COLUMNS, "attendance": ATTENDANCE_COLUMNS}   # what this source reads
WRITE_ACCESS = {"FullAccess"}  # column access levels that allow writing (others: ViewOnly, NoAccess, ...)


@dataclass
class PowerSchoolSettings:
    base_url: str
    client_id: str
    client_secret: str
    page_size: int = DEFAULT_PAGE_SIZE
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool | str = True
    participation_table: str = "S_CA_STU_CALPADSPROGRAMS_C"
    pull_timeout: float = 4 * 3600.0

    @classmethod
    def from_connection(cls, conn: ApiConnection) -> PowerSchoolSettings:
        """From the connection (as calpads_airflow.hooks.powerschool reads it): host = server URL,
        login = client ID, password = client secret."""
        extra = conn.extra
        host = conn.base_url
        if not host or not conn.login or not conn.password:
            raise ApiSourceError("The PowerSchool connection needs the server URL (host), the plugin's client ID "
                                 "(login) and client secret (password).")
        return cls(
            base_url=host, client_id=conn.login, client_secret=conn.password,
            page_size=int(extra.get("page_size") or DEFAULT_PAGE_SIZE),
            policy=RetryPolicy.from_extra(extra),
            verify=extra.get("verify", True),
            participation_table=str(extra.get("participation_table") or "S_CA_STU_CALPADSPROGRAMS_C").upper(),
            pull_timeout=float(extra.get("pull_timeout") or 4 * 3600.0),
        )


class PowerSchoolClient:
    source = SOURCE

    @classmethod
    def for_connection(cls, conn: ApiConnection) -> PowerSchoolClient:
        """The client the vendor's hook (calpads_airflow.hooks) builds from its connection."""
        return cls(PowerSchoolSettings.from_connection(conn))

    def __init__(self, settings: PowerSchoolSettings, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.http = HttpClient(settings.base_url, settings.policy, verify=settings.verify, sleep=sleep)
        self.token = OAuthClientCredentials(self.http, "/oauth/access_token", settings.client_id,
                                            settings.client_secret)
        self.http.auth = self.token
        self._metadata: dict[str, Any] | None = None
        self.stores: list[PageStore] = []

    # -- plumbing ------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            self._metadata = dict(self.http.get_json("/ws/v1/metadata").get("metadata") or {})
        return self._metadata

    def page_size(self, kind: str = "schema_table_query") -> int:
        """The configured page size, capped by the plugin's maximum from /ws/v1/metadata."""
        limit = self.metadata().get(f"{kind}_max_page_size") or self.metadata().get("schema_table_query_max_page_size")
        size = self.settings.page_size
        return max(1, min(size, int(limit))) if limit else max(1, size)

    def table_count(self, table: str, q: str | None = None) -> int:
        body = self.http.get_json(f"/ws/schema/table/{table.lower()}/count", params=_params(q=q))
        return int(body.get("count") or 0)

    def table_page(self, table: str, page: int, pagesize: int, columns: list[str], q: str | None = None
                   ) -> list[dict[str, Any]]:
        name = table.lower()
        body = self.http.get_json(f"/ws/schema/table/{name}", params=_params(
            projection=",".join(columns), q=q, page=page, pagesize=pagesize))
        return [dict((rec.get("tables") or {}).get(name) or {}) for rec in (body.get("record") or [])]

    def fetch_table(self, table: str, columns: list[str], work_dir: str | Path, q: str | None = None,
                    deadline: float | None = None) -> list[dict[str, Any]]:
        """Every row of a table (projection = columns), checkpointed page by page in work_dir."""
        return [row for page in self.table_pages(table, columns, work_dir, q, deadline) for row in page]

    def table_pages(self, table: str, columns: list[str], work_dir: str | Path, q: str | None = None,
                    deadline: float | None = None) -> Iterator[list[dict[str, Any]]]:
        """fetch_table one page at a time (daily attendance is never held whole)."""
        size = self.page_size()
        count = self.table_count(table, q)
        store = PageStore.for_dataset(work_dir, SOURCE, table.lower(), {
            "server": self.settings.base_url, "table": table.lower(), "q": q, "columns": columns, "pagesize": size})
        self.stores.append(store)
        return iter_pages(store, count=count, page_size=size, columns=columns, deadline=deadline,
                          label=f"PowerSchool table {table.upper()}",
                          fetch_page=lambda page: self.table_page(table, page, size, columns, q))

    def powerquery_count(self, name: str, args: dict[str, Any] | None = None) -> int:
        body = self.http.post_json(f"/ws/schema/query/{name}/count", json_body=args or {})
        return int(body.get("count") or 0)

    def powerquery_page(self, name: str, page: int, pagesize: int, args: dict[str, Any] | None = None
                        ) -> list[dict[str, Any]]:
        body = self.http.post_json(f"/ws/schema/query/{name}", params={"page": page, "pagesize": pagesize},
                                   json_body=args or {})
        return [_flatten(rec) for rec in (body.get("record") or [])]

    def fetch_powerquery(self, name: str, columns: list[str], work_dir: str | Path,
                         args: dict[str, Any] | None = None, deadline: float | None = None) -> list[dict[str, Any]]:
        """Every row of a PowerQuery (POST, paged with page/pagesize, counted with /count), checkpointed."""
        size = self.page_size("powerquery")
        count = self.powerquery_count(name, args)
        store = PageStore.for_dataset(work_dir, SOURCE, f"pq-{name}", {
            "server": self.settings.base_url, "query": name, "args": args, "pagesize": size})
        self.stores.append(store)
        return paged_fetch(store, count=count, page_size=size, columns=columns, deadline=deadline,
                           label=f"PowerSchool PowerQuery {name}",
                           fetch_page=lambda page: self.powerquery_page(name, page, size, args))

    def table_column_access(self, table: str) -> dict[str, str]:
        body = self.http.get_json(f"/ws/schema/table/{table.lower()}/metadata", params={"expansions": "access"})
        return {str(c.get("name", "")).lower(): str(c.get("access", "")) for c in body.get("columns") or []}

    # -- what the pipeline needs ------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        try:
            self.metadata()
            size = self.page_size()
        except ApiSourceError as exc:
            return False, str(exc)
        return True, f"Connected to PowerSchool; page size {size}."

    def check_flows(self, flows: list[str]) -> list[FlowCheck]:
        out: list[FlowCheck] = []
        for flow in flows:
            if flow == "write_participation":
                out.append(self._check_write(self.settings.participation_table))
                continue
            for table in FLOW_TABLES[flow]:
                out.append(self._check_read(flow, table))
        return out

    def _check_read(self, flow: str, table: str) -> FlowCheck:
        words = TABLE_WORDS.get(table, f"{table} table")
        resp = self.http.send("GET", f"/ws/schema/table/{table.lower()}/count", ok=(401, 403, 404))
        if resp.status_code == 200:
            return FlowCheck(flow, table, True, f"The pipeline can read the {words} ({table}).")
        if resp.status_code == 404:
            return FlowCheck(flow, table, False, f"The SIS has no {words} ({table}): ask district IT whether the "
                             "California state reporting tables are installed and shared with the plugin.")
        return FlowCheck(flow, table, False, read_denied_message(words, table, "plugin"))

    def _check_write(self, table: str) -> FlowCheck:
        words = "participation records"
        try:
            access = self.table_column_access(table)
        except AccessDenied:
            access = {}
        granted = bool(access) and all(a in WRITE_ACCESS for a in access.values())
        if granted:
            return FlowCheck("write_participation", table, True, f"The pipeline can write {words} ({table}).")
        return FlowCheck("write_participation", table, False, write_denied_message(words, table, "plugin"))

    def enrollment_code_columns(self) -> dict[str, list[str]]:
        """The ENROLLMENT_CODES columns STUDENTS and REENROLLMENTS have on this server (table metadata, read once
        per pull). A column the server lacks, or a table whose metadata the plugin may not read, is logged (names
        only) and left out: its values stay blank."""
        out: dict[str, list[str]] = {}
        missing: list[str] = []
        for table in CODE_TABLES:
            try:
                have = set(self.table_column_access(table))
            except ApiSourceError:
                have = set()
            out[table] = [c for c in ENROLLMENT_CODES if c in have]
            missing += [f"{table.upper()}.{c.upper()}" for c in ENROLLMENT_CODES if c not in have]
        if missing:
            log.warning("PowerSchool has no %s column(s) (the enrollment's CALPADS codes): those fields stay blank "
                        "(SENR 1.23 is then sent as 10).", ", ".join(missing))
        return out

    def pull_tables(self, scope: RunScope, work_dir: str | Path, program_codes: list[str] | None = None, *,
                    attendance: bool = True, record_types: tuple[str, ...] = RECORD_TYPES) -> dict[str, Any]:
        """The contract tables every CALPADS file reads (api_tables.TABLE_COLUMNS; the enrollment codes where the
        server has them), and, with ``attendance``, daily ATTENDANCE aggregated page by page into the frames of
        calpads.sources.attendance_pages. program_codes: the SPRG run's programs (Title I services are read only
        with 122; None = read them)."""
        deadline = time.monotonic() + self.settings.pull_timeout
        start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
        # Every contract table is served by the schema table API: nothing can be missing but access.
        check_supplied("PowerSchool", supplied_by(FULL_TABLES), record_types)
        attendance = attendance and needs_attendance(record_types)
        # Server-side filters only where they are exact (NOT NULL columns); the rest of the selection is the
        # reader's (sprg_frames, the staged builders), as for every API source.
        q = {
            "calendar_day": "insession==1",
            "s_ca_calpads_studentservices_c": f"servicedate=ge={start};servicedate=le={end}",
        }
        codes = self.enrollment_code_columns()
        tables: dict[str, Any] = {}
        for table, cols in TABLE_COLUMNS.items():
            if table == "s_ca_calpads_studentservices_c" and program_codes is not None and "122" not in program_codes:
                continue
            if not record_types and table not in SPRG_TABLE_COLUMNS:
                continue
            cols = [c for c in cols if c not in ENROLLMENT_CODES or c in codes.get(table, [])]
            tables[table] = self.fetch_table(table, cols, work_dir, q=q.get(table), deadline=deadline)
        if attendance:
            first, last = fetch_range(scope)
            agg = AttendancePages(tables, scope)
            for page in self.table_pages("attendance", ATTENDANCE_COLUMNS, work_dir, deadline=deadline,
                                         q=f"att_mode_code=={DAILY};att_date=ge={first};att_date=le={last}"):
                agg.add(page)
            tables.update(agg.frames())
        return tables


    def close(self) -> None:
        self.http.close()


def _params(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v not in (None, "")}


def _flatten(rec: dict[str, Any]) -> dict[str, Any]:
    """A PowerQuery record: flat {column: value}, or {"tables": {table: {...}}} when not flattened."""
    if "tables" in rec and isinstance(rec["tables"], dict):
        out: dict[str, Any] = {}
        for cols in rec["tables"].values():
            out.update(cols or {})
        return out
    return dict(rec)
