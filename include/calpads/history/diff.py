"""The transaction diff: which records a run sends, given what was last submitted.

Modes (the "Report Mode" of PowerSchool's Student Program Records Report; docs/history.md):
- ``submission``: records whose operational key is new, or whose updatable fields changed since
  the last saved submission (transaction type blank = add/update), plus a ``D`` record for every
  previously submitted key inside the run's scope that is no longer extracted; the D record
  repeats the fields as they were last submitted. A changed key is therefore a D of the old key
  and an add of the new one.
- ``replacement`` / ``non_submission``: every record, blank type, no deletes.

A record the SIS still has is never a delete, whatever happened to its key fields: ``still_in_sis``
marks every history record that a held-back or not-extracted row of this run still names -- by
operational key, by Local Record ID (field 3, built from internal SIS ids, so a typo in a key field
leaves it unchanged) or by the layout's ``record_identity`` (SPRG: the student + the program) -- and
``compute_transactions(never_delete=...)`` never deletes those (they still count for adds/updates).
A key change of a record that is published (same Local Record ID, new key)
stays a D + an add; calpads.history.guard.check_enrolled_deletes makes such deletes wait for the
run's ``allow_enrolled_deletes``.

Keys and hashes are computed and compared in DuckDB over the pandas frames (see ``keys``); only row
positions come back to Python, so the output is built with ``iloc`` and stays cheap. The diff stage computes the
records' keys and hashes from their Parquet file (``RecordsFile``) while the history is read, and asks
``still_in_sis`` about the history rows that may become deletes only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from calpads.history.keys import hash_sql, joined_keys, op_key_sql, op_keys, string_frame
from calpads.layouts import Layout
from calpads.run_scope import MODES

# Columns ``HistoryStore.last_submitted`` returns besides layout columns: the key, the hash, the run that sent
# the record and where its fields are (its log row: run_pk, line).
HIST_OP_KEY = "hist_op_key"
HIST_HASH = "hist_hash"
HIST_RUN_ID = "hist_run_id"
HIST_RUN_PK = "hist_run_pk"
HIST_LINE = "hist_line"

# Reads the layout fields (as last submitted) of some history rows, in their order: HistoryStore.fields_of.
FieldsReader = Callable[[pd.DataFrame], pd.DataFrame]
# One bool per history row given (True: never a delete), e.g. ``still_in_sis`` with the run's frames bound.
KeptRows = Callable[[pd.DataFrame], np.ndarray]

NEW, CHANGED, UNCHANGED = 0, 1, 2


@dataclass(frozen=True)
class ScopeFilter:
    """Which previously submitted records a run may delete. ``None`` = no restriction on that
    attribute; a set restricts to its members (an empty set: nothing is in scope).

    schools -> school_of_attendance, programs -> program_code, students -> local_student_id,
    reporting_lea / academic_year -> the record's own fields (``last_submitted`` already reads
    one LEA and year only; these guard a hand-made history frame). A filter on a column the
    layout does not have is ignored (e.g. schools for an LEA-level file).
    """

    schools: set[str] | None = None
    programs: set[str] | None = None
    students: set[str] | None = None
    reporting_lea: str | None = None
    academic_year: str | None = None

    def _checks(self, layout: Layout) -> list[tuple[str, Iterable[str]]]:
        checks: list[tuple[str, Iterable[str] | None]] = [
            ("school_of_attendance", self.schools),
            ("program_code", self.programs),
            ("local_student_id", self.students),
            ("reporting_lea", None if self.reporting_lea is None else [self.reporting_lea]),
            ("academic_year_id", None if self.academic_year is None else [self.academic_year]),
        ]
        return [(column, allowed) for column, allowed in checks if allowed is not None and column in layout.columns]

    def columns(self, layout: Layout) -> list[str]:
        """The history columns ``mask`` reads."""
        return [column for column, _ in self._checks(layout)]

    def mask(self, history: pd.DataFrame, layout: Layout) -> np.ndarray:
        """True for the history rows inside the scope."""
        keep = np.ones(len(history), dtype=bool)
        for column, allowed in self._checks(layout):
            values = history[column] if column in history.columns else pd.Series([None] * len(history))
            keep &= values.isin([str(v) for v in allowed]).to_numpy(dtype=bool)
        return keep


@dataclass
class DiffResult:
    """``records``: the layout columns, ``transaction_type`` None (add/update) or "D"; the other
    columns keep the dtypes they came with (a 1.5M-row replacement run is not converted to objects).
    ``counts``: new, changed, unchanged (extracted, not sent in submission mode), deleted."""

    records: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    kept_from_delete: int = 0     # in-scope history rows not extracted again that ``never_delete`` kept


@dataclass(frozen=True)
class RecordsFile:
    """A run's records in a Parquet work file, read where the diff needs them: DuckDB computes their keys and hashes
    from the file itself (at 1.5M records 0.6 s of CPU less than through a frame), pandas reads the records that are
    sent only (none on a night without a change, all on a first submission)."""

    path: Path
    layout: Layout

    def __len__(self) -> int:
        return pq.ParquetFile(self.path).metadata.num_rows

    def keys(self) -> pa.Table:
        """``record_keys`` of the file's records, in file order."""
        sql = f"SELECT {op_key_sql(self.layout)} AS k, {hash_sql(self.layout)} AS h FROM records"  # noqa: S608
        with duckdb.connect() as con:
            return con.read_parquet(str(self.path)).query("records", sql).to_arrow_table()

    def rows(self, positions: np.ndarray | None = None) -> pd.DataFrame:
        """The layout columns of the records at ``positions`` (ascending, distinct; None: all) as ``pd.read_parquet``
        reads them."""
        columns = self.layout.columns
        if positions is not None and not len(positions):
            schema = pq.read_schema(self.path)
            return pa.schema([schema.field(c) for c in columns]).empty_table().to_pandas()
        table = pq.read_table(self.path, columns=columns)
        if positions is not None and len(positions) < table.num_rows:
            table = table.take(pa.array(positions))
        return table.to_pandas()


def compute_transactions(records: pd.DataFrame | RecordsFile, layout: Layout, last_submitted: pd.DataFrame, mode: str,
                         in_scope: ScopeFilter, never_delete: np.ndarray | KeptRows | None = None,
                         read_fields: FieldsReader | None = None, keys: pa.Table | None = None) -> DiffResult:
    """The records a run publishes. ``last_submitted`` holds one row per operational key (the
    latest saved, not deleted). Either the layout columns (an ODS file, a hand-made frame: keys and
    hashes are computed), or what ``HistoryStore.last_submitted`` reads: ``hist_op_key``/``hist_hash`` and
    the columns the scope needs; the fields of the rows that may become deletes (in scope, not extracted again)
    then come from ``read_fields`` (``HistoryStore.fields_of``), so a 1.5M-row history is compared by key and hash
    only. ``never_delete`` (one bool per history row, see ``still_in_sis``) keeps rows from becoming
    deletes while they still count for adds/updates: a record compared with them stays unchanged. As a function
    of history rows it is asked about the rows that may become deletes only, given every layout column (those the
    history frame lacks as read by ``read_fields``).
    ``keys``: ``record_keys(records, layout)`` when computed already. ``records`` may be a ``RecordsFile``."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    columns = layout.columns
    cur = records if isinstance(records, RecordsFile) else string_frame(records, columns).reset_index(drop=True)
    prev = last_submitted if last_submitted is not None else pd.DataFrame()
    if HIST_OP_KEY not in prev.columns or HIST_HASH not in prev.columns:
        prev = string_frame(prev, columns)
    prev = prev.reset_index(drop=True)

    deletes_allowed = mode == "submission"
    if keys is not None and keys.num_rows != len(cur):
        raise ValueError(f"{keys.num_rows} keys given for {len(cur)} records")
    status, gone = _match(cur if keys is None else keys, prev, layout)
    in_scope_gone = gone[in_scope.mask(_rows(prev, gone), layout)] if deletes_allowed else gone[:0]
    kept, deleted = _kept_and_deleted(never_delete, in_scope_gone, _rows(prev, in_scope_gone), columns, read_fields)
    delete_pos = in_scope_gone[~kept]
    counts = {
        "new": int((status == NEW).sum()),
        "changed": int((status == CHANGED).sum()),
        "unchanged": int((status == UNCHANGED).sum()),
        "deleted": int(len(delete_pos)),
    }
    kept_from_delete = int(kept.sum())
    if not deletes_allowed:
        out = cur.rows() if isinstance(cur, RecordsFile) else cur.copy()
        out["transaction_type"] = _blank(len(out))
        return DiffResult(out, counts, kept_from_delete)

    sent = _rows(cur, np.flatnonzero(status != UNCHANGED)).copy()
    sent["transaction_type"] = _blank(len(sent))
    deleted["transaction_type"] = "D"
    parts = [p for p in (sent, deleted) if len(p)]
    out = pd.concat(parts, ignore_index=True) if parts else _rows(cur, gone[:0]).copy()
    return DiffResult(out[columns], counts, kept_from_delete)


def _rows(frame: pd.DataFrame | RecordsFile, positions: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[positions]``; none as a slice: taking no row of a 1.5M-row Arrow-backed column still costs."""
    if isinstance(frame, RecordsFile):
        return frame.rows(positions)
    return frame.iloc[positions] if len(positions) else frame.iloc[:0]


def _kept_and_deleted(never_delete: np.ndarray | KeptRows | None, positions: np.ndarray, rows: pd.DataFrame,
                      columns: list[str], read_fields: FieldsReader | None) -> tuple[np.ndarray, pd.DataFrame]:
    """For the history ``rows`` at ``positions`` that may become deletes: which ``never_delete`` keeps, and the
    layout fields (as last submitted) of the others. A function is given the rows with every layout column, those
    the frame lacks read with the deletes' fields in one ``read_fields``."""
    if callable(never_delete) and len(rows):
        rows, fields = _with_fields(rows, columns, read_fields)
        kept = np.asarray(never_delete(rows), dtype=bool)
        return kept, fields[~kept].reset_index(drop=True).copy()
    kept = np.zeros(len(positions), dtype=bool) if never_delete is None or callable(never_delete) else \
        np.asarray(never_delete, dtype=bool)[positions]
    return kept, _with_fields(rows[~kept], columns, read_fields)[1].reset_index(drop=True).copy()


def record_keys(records: pd.DataFrame, layout: Layout) -> pa.Table:
    """Each record's operational key ``k`` and updatable-field hash ``h`` in the canonical form (``keys``), in the
    records' order, computed in DuckDB."""
    frame = string_frame(records, layout.columns).reset_index(drop=True)
    with duckdb.connect() as con:
        con.register("records", frame)
        return con.sql(f"SELECT {op_key_sql(layout)} AS k, {hash_sql(layout)} AS h FROM records").to_arrow_table()  # noqa: S608


def _with_fields(rows: pd.DataFrame, columns: list[str],
                 read_fields: FieldsReader | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with every layout column, their layout columns as last submitted). A history frame of keys and hashes
    (``HistoryStore.last_submitted``) lacks most: those are read by ``read_fields``; its own columns stay."""
    if set(columns) <= set(rows.columns):
        return rows, rows[columns]
    if not len(rows):
        return rows, pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    if read_fields is None:
        raise ValueError("the history rows hold keys and hashes only: give read_fields to read the deletes' fields")
    fields = string_frame(read_fields(rows), columns).reset_index(drop=True)
    missing = {c: fields[c].to_numpy() for c in columns if c not in rows.columns}
    return rows.assign(**missing), fields


def _match(cur: pd.DataFrame | RecordsFile | pa.Table, prev: pd.DataFrame,
           layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Per current row NEW/CHANGED/UNCHANGED, and the positions (sorted) of the history rows whose key
    is no longer extracted. ``cur``: the records, or their ``record_keys``."""
    if len(prev) == 0:
        return np.full(len(cur), NEW, dtype=np.int8), np.empty(0, dtype=np.int64)
    if isinstance(cur, RecordsFile):
        cur = cur.keys()
    positions = np.arange(len(cur), dtype=np.int64)
    keyed = isinstance(cur, pa.Table)
    cur_in = cur.append_column("__pos", pa.array(positions)) if keyed else cur.assign(__pos=positions)
    cur_key, cur_hash = ("k", "h") if keyed else (op_key_sql(layout), hash_sql(layout))
    prev_in = (prev[[HIST_OP_KEY, HIST_HASH]] if HIST_OP_KEY in prev.columns else prev).assign(
        __pos=np.arange(len(prev), dtype=np.int64))
    prev_key = HIST_OP_KEY if HIST_OP_KEY in prev.columns else f"({op_key_sql(layout)})"
    prev_hash = HIST_HASH if HIST_HASH in prev.columns else f"({hash_sql(layout)})"
    # Layout column names only (from the layout YAML), never user input.
    sql = f"""
        WITH c AS (SELECT __pos, {cur_key} AS k, {cur_hash} AS h FROM cur_in),
             p AS (SELECT __pos, {prev_key} AS k, {prev_hash} AS h FROM prev_in)
        SELECT coalesce(c.__pos, -1) AS cpos, coalesce(p.__pos, -1) AS ppos,
               coalesce(c.h = p.h, false) AS same
        FROM c FULL OUTER JOIN p ON c.k = p.k
    """  # noqa: S608
    with duckdb.connect() as con:
        con.register("cur_in", cur_in)
        con.register("prev_in", prev_in)
        res = con.sql(sql).fetchnumpy()
    cpos, ppos = np.asarray(res["cpos"]), np.asarray(res["ppos"])
    same = np.asarray(res["same"], dtype=bool)

    status = np.full(len(cur), NEW, dtype=np.int8)
    matched = (cpos >= 0) & (ppos >= 0)
    # A current row matching several history rows (a hand-made frame with duplicate keys) is
    # unchanged only if it equals one of them: CHANGED first, UNCHANGED overwrites.
    status[cpos[matched & ~same]] = CHANGED
    status[cpos[matched & same]] = UNCHANGED
    return status, np.sort(ppos[cpos < 0])


def _blank(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


def record_identity(layout: Layout) -> list[str]:
    """The layout's ``record_identity`` columns: what names one record of the SIS across changes of its key
    fields, besides its Local Record ID (SPRG: local_student_id + program_code). [] when the layout has none."""
    return [c for c in layout.raw.get("record_identity", []) if c in layout.columns]


def still_in_sis(last_submitted: pd.DataFrame, held_back: pd.DataFrame, layout: Layout,
                 not_extracted: pd.DataFrame | None = None) -> np.ndarray:
    """True for each history row that a held-back record or a not-extracted row of this run still names:
    the same operational key (held-back records), the same Local Record ID, or the same record identity
    (``record_identity``; a part missing from a not-extracted row, or blank, never matches). Vectorised:
    set lookups on keys joined in DuckDB (1.5M history rows in about a second)."""
    keep = np.zeros(len(last_submitted), dtype=bool)
    present = [f for f in (held_back, not_extracted) if f is not None and len(f)]
    if not present or not len(last_submitted):
        return keep
    if len(held_back):
        last_keys = (last_submitted[HIST_OP_KEY] if HIST_OP_KEY in last_submitted.columns
                     else op_keys(last_submitted, layout))
        keep |= last_keys.isin(set(op_keys(held_back, layout))).to_numpy(dtype=bool)
    ids = {str(v) for f in present if "local_record_id" in f for v in f["local_record_id"].dropna()}
    if ids and "local_record_id" in last_submitted:
        keep |= last_submitted["local_record_id"].astype(object).isin(ids).to_numpy(dtype=bool)
    identity = record_identity(layout)
    if identity:
        named = set()
        for f in present:
            if not set(identity) <= set(f.columns):
                continue
            complete = f[identity].notna().all(axis=1) & (f[identity].astype(str) != "").all(axis=1)
            named |= set(joined_keys(f[complete.to_numpy(dtype=bool)], identity))
        if named:
            keep |= pd.Series(joined_keys(last_submitted, identity)).isin(named).to_numpy(dtype=bool)
    return keep


def without_held_back(last_submitted: pd.DataFrame, held_back: pd.DataFrame, layout: Layout,
                      not_extracted: pd.DataFrame | None = None) -> pd.DataFrame:
    """The history rows that no held-back record and no not-extracted row of this run still names
    (``still_in_sis``). For timing the filter (bench/run_all.py); the pipeline passes the mask to
    ``compute_transactions(never_delete=...)`` instead, because a published record of the same student
    and program must still be compared with its history row (dropped, it would look new)."""
    if not len(last_submitted):
        return last_submitted
    return last_submitted[~still_in_sis(last_submitted, held_back, layout, not_extracted)]
