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
import queue
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
        with failing_part(WorkFolderError, f"The staged table {target} could not be written"):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
            try:
                # Dictionary pages (pyarrow's default): without them the write took 0.4 s less CPU at 500k students,
                # but reading the tables back raised the extract's peak by about 50 MB (docs/performance.md, "Staging
                # read (round 3)"). Not compressed: a work file read back in the same task, where snappy cost about
                # 1 s of CPU at 500k students (mostly in the reads) to save 40 MB of disk.
                with os.fdopen(fd, "wb") as fh, pq.ParquetWriter(fh, schema, compression="none") as writer:
                    rows = _write_batches(writer, batches, schema.metadata)
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)   # a failed read of the source leaves no half table behind
                raise
        self._written.add(name)
        self._frames.pop(name, None)
        return rows

    def write_frame(self, name: str, frame: pd.DataFrame, schema: pa.Schema | None = None) -> int:
        return self.write(name, pa.Table.from_pandas(frame, schema=schema, preserve_index=False))

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """The staged table (only ``columns``, when given) as Arrow; not kept."""
        with failing_part(WorkFolderError, f"The staged table {self.path(name)} of this run could not be read"):
            return pq.read_table(self.path(name), columns=columns)

    def frame(self, name: str) -> pd.DataFrame:
        """The table as pandas (int64 columns, text as Python str / None); read once, then shared: do not modify."""
        if name not in self._frames:
            self._frames[name] = self.table(name).to_pandas()
        return self._frames[name]

    def student_groups(self, names: Iterable[str], students_per_group: int) -> Iterator[StagedReader]:
        """The staged tables in groups of at most ``students_per_group`` STUDENTS rows (in their staged order): each
        group reads the rows of the student-keyed tables among ``names`` (contract.STUDENT_KEYS) that belong to its
        students, in their staged order, and every other table whole. For a builder whose every record is
        decided by one student's rows: its memory then grows with the group, not with the district. Yields this
        object itself (one group) when the students fit in one group, or when an id is blank or repeated (a
        row could not be placed in exactly one group)."""
        from calpads.staging.contract import STUDENT_KEYS, STUDENTS

        students = self.table(STUDENTS)
        keyed = {n: self.table(n) for n in dict.fromkeys(names)
                 if n in STUDENT_KEYS and n != STUDENTS and self.has(n)}
        placeable = all(all_distinct(students[col]) for col in ("id", "dcid")) and \
            all(t[STUDENT_KEYS[n][0]].null_count == 0 for n, t in keyed.items())
        if len(students) <= students_per_group or not placeable:
            del students, keyed
            yield self
            return
        # An integer column with a blank anywhere reads as float64 from the whole table: so it does in every group.
        floats = {n: [c for c in t.column_names if pa.types.is_integer(t[c].type) and t[c].null_count]
                  for n, t in {STUDENTS: students, **keyed}.items()}
        # Each row's group, once: the position of its student (a row whose student is not staged is in none),
        # divided by the group size; the rows of every table ordered by group, stably (their staged order within
        # a group), so that a group's rows are one run of that order. Rows staged in their students' order
        # already are in runs: a group reads a slice of them, no copy.
        runs: dict[str, tuple[np.ndarray | None, np.ndarray]] = {}
        bounds = np.arange(0, len(students) + students_per_group, students_per_group)
        for n, t in keyed.items():
            col, student_col = STUDENT_KEYS[n]
            at = pc.index_in(t[col], value_set=students[student_col])
            group_of = pc.fill_null(pc.divide(at, students_per_group), -1).to_numpy()
            in_runs = bool(np.all(group_of[1:] >= group_of[:-1]))
            order = None if in_runs else np.argsort(group_of, kind="stable")
            runs[n] = (order, np.searchsorted(group_of if in_runs else group_of[order], np.arange(len(bounds)),
                                              side="left"))
            if not in_runs:   # a take from one chunk is several times faster than from the file's many
                keyed[n] = t.combine_chunks()
        for g, start in enumerate(bounds[:-1]):
            tables = {STUDENTS: students.slice(int(start), students_per_group)}
            for n, t in keyed.items():
                order, first = runs[n]
                tables[n] = t.slice(first[g], first[g + 1] - first[g]) if order is None else \
                    t.take(order[first[g]:first[g + 1]])
            yield StudentGroup(self, tables, floats)

    def missing_columns(self, name: str) -> tuple[str, ...]:
        """The contract columns the source lacked (staged blank)."""
        meta = pq.read_schema(self.path(name)).metadata or {}
        return tuple(json.loads(meta.get(_MISSING, b"[]")))

    def counts(self) -> dict[str, int]:
        return {p.name.removesuffix(".parquet"): pq.ParquetFile(p).metadata.num_rows
                for p in sorted(self.folder.glob("*.parquet"))}


def _write_batches(writer: pq.ParquetWriter, batches: Iterable[pa.RecordBatch], metadata: dict[bytes, bytes]) -> int:
    """Write the batches (the empty ones skipped) in a thread of their own while the source reads the next: the
    SIS read and the Parquet encoding both run outside the GIL, so they overlap. Returns the rows written; the
    source's error is raised as it was, the writer's once the source has stopped."""
    pending: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=2)
    failed: list[BaseException] = []

    def write() -> None:
        while (batch := pending.get()) is not None:
            if not failed:
                try:
                    writer.write_batch(batch)
                except BaseException as exc:   # raised in the caller's thread below
                    failed.append(exc)

    thread = threading.Thread(target=write, name="staging-writer", daemon=True)
    thread.start()
    rows = 0
    try:
        for batch in batches:
            if failed:
                break
            if batch.num_rows:
                pending.put(batch.replace_schema_metadata(metadata))
                rows += batch.num_rows
    finally:
        pending.put(None)
        thread.join()
    if failed:
        raise failed[0]
    return rows


def all_distinct(values: pa.ChunkedArray | pa.Array) -> bool:
    """No blank and no value twice (ids in increasing order, as a SIS usually stages them, are checked in one
    pass; others are counted)."""
    if values.null_count:
        return False
    if pa.types.is_integer(values.type):
        numbers = values.to_numpy()
        if bool(np.all(numbers[1:] > numbers[:-1])):
            return True
    return pc.count_distinct(values).as_py() == len(values)


class SpillFile:
    """Arrow tables of one schema parked in an owner-only file (0600) of the run's work folder and read back
    whole: for a builder whose results would otherwise share memory with the staged tables it reads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh: Any = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

    def write(self, table: pa.Table) -> None:
        with failing_part(WorkFolderError, f"The work file {self.path} could not be written"):
            if self._writer is None:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                os.fchmod(fd, 0o600)
                self._fh = os.fdopen(fd, "wb")
                self._writer = pa.ipc.new_file(self._fh, table.schema)
            self._writer.write_table(table)

    def read(self) -> pa.Table:
        if self._writer is None:
            raise RuntimeError(f"internal error: nothing was written to {self.path}")
        self._close()
        with failing_part(WorkFolderError, f"The work file {self.path} could not be read"), \
                pa.OSFile(str(self.path)) as source:
            return pa.ipc.open_file(source).read_all()

    def remove(self) -> None:
        self._close()
        self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._writer is not None and self._fh is not None:
            self._writer.close()
            self._fh.close()
            self._fh = None


class StagedReader(Protocol):
    """What a builder reads from the staged tables (StagedTables, or one StudentGroup of them)."""

    def frame(self, name: str) -> pd.DataFrame: ...

    def has(self, name: str) -> bool: ...

    def missing_columns(self, name: str) -> tuple[str, ...]: ...


class StudentGroup:
    """One group of students of StagedTables.student_groups: its rows of the student-keyed tables, the other
    tables from the whole staging."""

    def __init__(self, staged: StagedTables, tables: dict[str, pa.Table], floats: dict[str, list[str]]):
        self.staged = staged
        self._tables = tables
        self._floats = floats
        self._frames: dict[str, pd.DataFrame] = {}

    def frame(self, name: str) -> pd.DataFrame:
        """As StagedTables.frame: the same columns and dtypes as the whole table's frame, this group's rows."""
        if name not in self._tables:
            return self.staged.frame(name)
        if name not in self._frames:
            self._frames[name] = self._tables[name].to_pandas().astype(
                dict.fromkeys(self._floats.get(name, []), "float64"))
        return self._frames[name]

    def has(self, name: str) -> bool:
        return self.staged.has(name)

    def missing_columns(self, name: str) -> tuple[str, ...]:
        return self.staged.missing_columns(name)
