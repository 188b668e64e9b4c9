"""API sources' contract-table rows -> the SPRG pull, through the staging model.

An API client hands over contract tables' rows (dicts keyed by the contract's lower-case column
names, calpads.staging.contract); ``assemble_sprg_pull`` stages them in a temporary folder and
applies the one SPRG selection (calpads.extracts.selection.sprg_pull), exactly as a run does with
the staged tables of any source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from calpads.run_scope import RunScope
from calpads.sources.sql_sis import SprgPull
from calpads.staging import contract

# The contract columns an API client reads per table (the optional enrollment codes are asked for where the
# vendor has them: calpads.sources.powerschool_api.enrollment_code_columns).
SPRG_TABLE_COLUMNS: dict[str, list[str]] = {
    table: [col for col in cols if col not in contract.OPTIONAL_COLUMNS.get(table, ())]
    for table, cols in contract.TABLE_COLUMNS.items()}

Rows = list[dict[str, Any]]


def assemble_sprg_pull(tables: dict[str, Rows], scope: RunScope, program_codes: list[str]) -> SprgPull:
    """The SprgPull a run would select from a SIS holding these rows."""
    import tempfile

    from calpads.extracts import sprg
    from calpads.extracts.selection import sprg_pull
    from calpads.staging.api_adapter import stage_pulled
    from calpads.staging.store import StagedTables

    with tempfile.TemporaryDirectory(prefix="calpads-staged-") as tmp:
        staged = StagedTables(Path(tmp))
        staged.reset()
        stage_pulled({contract.SERVICES: [], **tables}, sprg.TABLES, staged, "API")
        return sprg_pull(staged, scope, program_codes)


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """A frame sorted on all its columns (None/NaN last), index reset: for comparing pulls."""
    if df.empty:
        return df.reset_index(drop=True)
    key = df.astype(object).where(df.notna(), None).map(lambda v: "" if v is None else f"{type(v).__name__}:{v}")
    order = key.sort_values(list(key.columns), kind="mergesort").index
    return df.loc[order].reset_index(drop=True)


def client_sprg_pull(client: Any, scope: RunScope, program_codes: list[str], work_dir: str | Path) -> SprgPull:
    """The SprgPull a run would select from a vendor client's ``pull_tables`` (tests and tools; a run stages
    through calpads.staging.api_adapter). Pages are checkpointed under work_dir."""
    return assemble_sprg_pull(client.pull_tables(scope, work_dir, list(program_codes), record_types=("SPRG",)),
                              scope, program_codes)
