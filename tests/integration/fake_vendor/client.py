"""TableSIS's source client: the SPRG tables, paged with offset/limit, checkpointed like every API source.

A client's one data call is ``pull_tables``: the run's API adapter (calpads.staging.api_adapter) stages what it
returns and the builders do the rest. TableSIS carries no attendance: STAS and LEAP stop before building."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from calpads.run_scope import RunScope
from calpads.sources.api_common import (
    ApiConnection,
    ApiSourceError,
    FlowCheck,
    HttpClient,
    PageStore,
    RetryPolicy,
    StaticHeader,
    paged_fetch,
)
from calpads.sources.sprg_frames import SPRG_TABLE_COLUMNS

SOURCE = "tablesis_api"


class TableSisClient:
    source = SOURCE

    @classmethod
    def for_connection(cls, conn: ApiConnection) -> TableSisClient:
        if not conn.base_url or not conn.password:
            raise ApiSourceError("The TableSIS connection needs the server URL (host) and the API key (password).")
        return cls(conn.base_url, conn.password, int(conn.extra.get("page_size") or 100),
                   RetryPolicy.from_extra(conn.extra))

    def __init__(self, base_url: str, api_key: str, page_size: int, policy: RetryPolicy):
        self.base_url, self.page_size = base_url, page_size
        self.http = HttpClient(base_url, policy)
        self.http.auth = StaticHeader("X-Api-Key", api_key)

    def fetch_table(self, table: str, work_dir: str | Path) -> list[dict[str, Any]]:
        columns = SPRG_TABLE_COLUMNS[table]

        def page(n: int) -> list[dict[str, Any]]:
            body = self.http.get_json(f"/api/tables/{table}",
                                      params={"offset": (n - 1) * self.page_size, "limit": self.page_size})
            return list(body["rows"])

        total = int(self.http.get_json(f"/api/tables/{table}", params={"limit": 0})["total"])
        store = PageStore.for_dataset(work_dir, SOURCE, table, {"server": self.base_url, "size": self.page_size})
        return paged_fetch(store, count=total, page_size=self.page_size, columns=columns, fetch_page=page,
                           deadline=time.monotonic() + 600, label=f"TableSIS {table}")

    def pull_tables(self, scope: RunScope, work_dir: str | Path, program_codes: list[str] | None = None, *,
                    record_types: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
        """The contract tables TableSIS serves, as rows keyed by the contract's lower-case column names."""
        return {table: self.fetch_table(table, work_dir) for table in SPRG_TABLE_COLUMNS}

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.http.get_json("/api/ping")
        except ApiSourceError as exc:
            return False, str(exc)
        return True, "Connected to TableSIS."

    def check_flows(self, flows: list[str]) -> list[FlowCheck]:
        return [FlowCheck(flow, "TableSIS", None, "TableSIS has no permission API") for flow in flows]

    def close(self) -> None:
        self.http.close()
