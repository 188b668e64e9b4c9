"""Staged tables in a temporary folder, for one-off reads outside a run (tests, tools, the demo, benchmarks).

A run stages into its own work folder (calpads.pipeline.extract); this stages the same tables
the same way and removes them when the block ends.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from calpads.run_scope import RunScope
from calpads.staging.store import StagedTables


@contextmanager
def staged_from_sql(engine: sa.Engine, tables: Collection[str], scope: RunScope) -> Iterator[StagedTables]:
    from calpads.staging.sql_adapter import SqlAdapter

    with tempfile.TemporaryDirectory(prefix="calpads-staged-") as tmp:
        staged = StagedTables(Path(tmp))
        staged.reset()
        SqlAdapter(engine).stage(tables, scope, staged)
        yield staged
