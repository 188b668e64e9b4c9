"""The API source adapter: a vendor API's contract-table rows -> staged tables.

Wraps the vendor clients (calpads.sources.api_sources.client_for): ``client.pull_tables(scope,
work_dir)`` returns the contract tables it can read as rows (dicts keyed by the contract's
lower-case column names) or pandas frames (the aggregates), with its paging checkpoints under
the run's work folder, so a retried attempt resumes. A table the record type needs and the
client does not return fails the run once, before anything is built, in the client's words
when it has them (MissingSourceData).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from calpads.run_scope import RunScope
from calpads.sources.api_common import MissingSourceData
from calpads.staging import contract as c
from calpads.staging.store import StagedTables

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]
TableData = Rows | pd.DataFrame


def rows_to_arrow(table: str, rows: Iterable[Mapping[str, Any]]) -> tuple[pa.Table, list[str]]:
    """A contract table's rows as Arrow (contract.rows_table), and the optional columns no row carries (the SIS
    lacks them: staged blank)."""
    rows = list(rows)
    seen = set().union(*(r.keys() for r in rows)) if rows else set(c.TABLE_COLUMNS[table])
    missing = [col for col in c.OPTIONAL_COLUMNS.get(table, ()) if col not in seen]
    return c.rows_table(rows, c.TABLE_COLUMNS[table]), missing


def _known_gaps() -> dict[tuple[str, str], str]:
    """(source, table) -> the source's own words for a table it cannot supply."""
    from calpads.sources import oneroster

    return {("oneroster", c.PROGRAMS): oneroster.SPRG_GAP}


def stage_pulled(pulled: Mapping[str, TableData], tables: Collection[str], staged: StagedTables, source: str) -> None:
    """Write the tables a record type needs from a client's pull; MissingSourceData names what the source lacks
    (in its own words where it has them), before anything is staged or built."""
    lacking = [t for t in tables if t not in pulled]
    gaps = _known_gaps()
    for table in lacking:
        if (source, table) in gaps:
            raise MissingSourceData(gaps[source, table])
    if lacking:
        raise MissingSourceData(
            f"The {source} source does not supply {', '.join(lacking)}, which this file needs: choose a source "
            f"that carries them (the SIS database, or the PowerSchool API), or ask the vendor for them.")
    for table in tables:
        data = pulled[table]
        if isinstance(data, pd.DataFrame):
            staged.write_frame(table, data)
        else:
            arrow, missing = rows_to_arrow(table, data)
            staged.write(table, arrow, missing_columns=missing)


class ApiAdapter:
    """Stages the tables a record type needs from a vendor API (powerschool_api, aeries_api, oneroster, or any
    vendor the hooks register: calpads_airflow.registry)."""

    def __init__(self, kind: str, conn_id: str, work_dir: Path, record_types: tuple[str, ...] = ()):
        self.kind = kind
        self.conn_id = conn_id
        self.work_dir = Path(work_dir)
        self.record_types = record_types   # what the client fetches (attendance only for STAS and LEAP)

    def stage(self, tables: Collection[str], scope: RunScope, staged: StagedTables) -> None:
        from calpads.sources.api_sources import client_for, get_connection

        client = client_for(self.kind, get_connection(self.conn_id))   # ValueError naming the known sources
        try:
            pulled = client.pull_tables(scope, self.work_dir, record_types=self.record_types)
        finally:
            client.close()
        stage_pulled(pulled, tables, staged, self.kind)
