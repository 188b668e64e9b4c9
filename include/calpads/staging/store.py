"""StagedTables: the staged contract tables of one run, as Parquet files in ``<work_dir>/staged/``.

A source adapter writes each table once per extract attempt (streamed in Arrow record batches,
so a large table never sits in memory as Python rows); the staging gate and the builders read
them. Files hold student data: the folder is owner-only (0700), each file is created owner-only
(0600) under a temporary name and renamed into place, so a table is there whole or not at all.
Why Parquet files and not a DuckDB database: docs/adr/0002-staging-store.md.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from calpads.failures import WorkFolderError, failing_part

FOLDER = "staged"
_MISSING = b"calpads.missing_columns"


class StagedTables:
    """The staged tables of one run (see the module docstring)."""

    def __init__(self, work_dir: Path):
        self.folder = Path(work_dir) / FOLDER
        self._frames: dict[str, pd.DataFrame] = {}
        self._written: set[str] = set()

    def reset(self) -> None:
        """An empty, owner-only staging folder: a retried extract stages afresh (the SIS may have changed)."""
        with failing_part(WorkFolderError, f"The staging folder {self.folder} could not be prepared"):
            if self.folder.exists():
                shutil.rmtree(self.folder)
            self.folder.mkdir(mode=0o700, parents=True)
            os.chmod(self.folder, 0o700)
        self._frames.clear()
        self._written.clear()

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.parquet"

    def has(self, name: str) -> bool:
        return self.path(name).exists()

    def write(self, name: str, data: pa.Table | Iterable[pa.RecordBatch], schema: pa.Schema | None = None, *,
              missing_columns: Iterable[str] = ()) -> int:
        """Stage one table (a Table, or record batches of ``schema``); returns its row count. A table is staged
        once per attempt: staging it twice is a bug of the caller (it would read the SIS twice)."""
        if name in self._written:
            raise RuntimeError(f"internal error: the staged table {name} was already written in this run")
        if isinstance(data, pa.Table):
            schema, batches = data.schema, data.to_batches()
        elif schema is None:
            raise ValueError("record batches need their schema")
        else:
            batches = data
        missing = sorted(set(missing_columns))
        schema = schema.with_metadata({**(schema.metadata or {}), _MISSING: json.dumps(missing).encode()})
        target = self.path(name)
        tmp = target.with_name(f".{target.name}.partial")
        rows = 0
        with failing_part(WorkFolderError, f"The staged table {target} could not be written"):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
                    for batch in batches:
                        if batch.num_rows:
                            writer.write_batch(batch.replace_schema_metadata(schema.metadata))
                            rows += batch.num_rows
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)   # a failed read of the source leaves no half table behind
                raise
        self._written.add(name)
        self._frames.pop(name, None)
        return rows

    def write_frame(self, name: str, frame: pd.DataFrame, schema: pa.Schema | None = None) -> int:
        return self.write(name, pa.Table.from_pandas(frame, schema=schema, preserve_index=False))

    def table(self, name: str) -> pa.Table:
        with failing_part(WorkFolderError, f"The staged table {self.path(name)} of this run could not be read"):
            return pq.read_table(self.path(name))

    def frame(self, name: str) -> pd.DataFrame:
        """The table as pandas (int64 columns, text as Python str / None); read once, then shared: do not modify."""
        if name not in self._frames:
            self._frames[name] = self.table(name).to_pandas()
        return self._frames[name]

    def missing_columns(self, name: str) -> tuple[str, ...]:
        """The contract columns the source lacked (staged blank)."""
        meta = pq.read_schema(self.path(name)).metadata or {}
        return tuple(json.loads(meta.get(_MISSING, b"[]")))

    def counts(self) -> dict[str, int]:
        return {p.name.removesuffix(".parquet"): pq.ParquetFile(p).metadata.num_rows
                for p in sorted(self.folder.glob("*.parquet"))}
