"""The submission history store in the ``calpads_store`` database (SQLite or PostgreSQL).

One row per saved run (``calpads_history_runs``); one row per record a saved run published, the
transactions sent, append-only (``calpads_history_log``: run, line, op key, action, fields); and what
CALPADS holds now (``calpads_history_current``: one row per operational key, its hash, the columns the
diff's scope needs and where its fields are), updated by each saved run's delta: adds/updates upserted,
D's removed. The diff reads keys and hashes; fields are read only for the records that become deletes
(``fields_of``). Why: docs/adr/0003-history-schema.md.

Idempotency: a run is saved at most once per (record_type, reporting_lea, run_id) -- a unique
constraint on the runs table, checked under a lock row. A repeat (Airflow retry/clear) saves
nothing and returns 0. We skip rather than delete+insert: re-applying an old run's delta would put its
records back over runs saved after it.

Concurrency: saves take a lock row per (record type, LEA) -- ``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite the transaction starts with ``BEGIN IMMEDIATE`` (the database write lock).
Serialised saves also keep run ids in save order, which reading the history as of a base relies on.

One saved submission per (record type, LEA, academic year) at a time. The diff and the save are
separate tasks (separate processes), so a lock held from one to the other is a lease row
(``calpads_history_leases``): the diff reads the history as of its base (the latest saved run's id,
``history_base``) and then claims the lease with that base (``claim_submission``), refused while
another run holds it (``SubmissionInProgress``) or when a run was saved in the meantime
(``HistoryChanged``). The save, under the lock row, refuses when the latest saved run is no longer the
base the run compared against (``HistoryChanged``): two runs that diffed against the same history never
both save it, whatever happened to the lease (released on failure, expired after ``LEASE_HOURS``).
Database errors are raised as ``StoreUnavailable`` (the alert names the store).
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as _pg_insert

from calpads.failures import HistoryChanged, SubmissionInProgress, store_errors
from calpads.history import schema
from calpads.history.diff import HIST_HASH, HIST_LINE, HIST_OP_KEY, HIST_RUN_ID, HIST_RUN_PK, record_identity
from calpads.history.keys import FIELD_SEPARATOR, fields_sql, hash_sql, ident, op_key_sql, string_frame
from calpads.layouts import Layout, load_layout

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_ROWS_PER_INSERT = 1_000   # rows per INSERT statement on SQLite (fewer when its bound-parameter limit is lower)
PG_COPY_BATCH = 200_000   # rows rendered as CSV at a time for PostgreSQL's COPY
COPY_READ_BYTES = 1 << 20  # what the COPY reads of the rendered text at a time
SAVE_CHUNK = 100_000
READ_CHUNK = 900          # log lines per fields_of query: under SQLite's 999 bound parameters
SQLITE_BUSY_MS = 300_000
_MIGRATE_LOCK = threading.Lock()
LEASE_HOURS = 12   # a lease older than this (its run died without releasing it) no longer blocks other runs

LOG_COLUMNS = ["run_pk", "line", "op_key", "transaction_type", "local_student_id", "ssid", "fields"]
# What a save computes per record for the current state (transaction_type tells upserts from removals).
DELTA_COLUMNS = ["op_key", "record_hash", "line", "transaction_type", *schema.STATE_COLUMNS]
CURRENT_COLUMNS = ["scope_id", "op_key", "record_hash", "run_pk", "line", *schema.STATE_COLUMNS]
STATE_READ = ["op_key", "record_hash", "run_pk", "line", *schema.STATE_COLUMNS]
STATE_SCHEMA = pa.schema([(c, pa.int64() if c in ("run_pk", "line") else pa.string()) for c in STATE_READ])
READ_BATCH = 250_000      # current-state rows per Arrow batch of the SQLite driver


class HistoryStore:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # ------------------------------------------------------------------ migrations
    def _alembic_config(self, connection: sa.Connection) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        return cfg

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory(str(MIGRATIONS)).get_current_head()

    @store_errors("be opened")
    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": schema.VERSION_TABLE})
            return ctx.get_current_revision()

    @store_errors("be opened or upgraded")
    def migrate(self) -> None:
        """Upgrade the history tables to the latest revision; a no-op when already there."""
        if self._at_head():
            return
        from alembic import command

        if self.current_revision() == self.head_revision():
            return
        # Alembic's context is process-global: one migration at a time per process. Across
        # processes: a PostgreSQL advisory lock (env.py), SQLite's write lock (BEGIN IMMEDIATE, and
        # SQLite DDL is transactional), so a second migrator waits, then finds the head revision.
        with _MIGRATE_LOCK:
            if self.engine.dialect.name == "sqlite":
                with _sqlite_immediate(self.engine) as conn:
                    command.upgrade(self._alembic_config(conn), "head")
            else:
                with self.engine.begin() as conn:
                    command.upgrade(self._alembic_config(conn), "head")

    def _at_head(self) -> bool:
        """The version table names schema.HEAD_REVISION: read by plain SQL, because importing Alembic costs each
        diff and save 0.2 s. False when it cannot tell (no table yet, another revision): ``migrate`` asks Alembic."""
        version = sa.table(schema.VERSION_TABLE, sa.column("version_num"))
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.select(version.c.version_num)).scalars().all() == [schema.HEAD_REVISION]
        except sa.exc.DBAPIError:
            return False

    # ------------------------------------------------------------------ save
    @store_errors("save the submission history")
    def save_run(self, published: pd.DataFrame | pa.Table, layout: Layout, *, lea: str, academic_year: str,
                 run_id: str, params: dict[str, Any], expected_base: int | None = None) -> int:
        """Record a run's published records (layout columns, a frame or an Arrow table of text; transaction_type
        None or "D") as submitted. Returns the rows saved: 0 when this run was already saved.

        ``expected_base``: the history the run compared against (``history_base`` at its diff); when the
        latest saved run of the record type, LEA and year is another one now, nothing is saved
        (HistoryChanged). None (a seed from an ODS file, the command line) saves without that check."""
        record_type = layout.record_type
        _check_belongs(published, lea, academic_year)
        n = len(published)
        deletes = _count_equal(published, "transaction_type", "D")
        saved_at = datetime.now(UTC)
        run_row = dict(record_type=record_type, reporting_lea=lea, academic_year=academic_year, run_id=run_id,
                       params=json.dumps(params, sort_keys=True, default=str), record_count=n,
                       add_update_count=n - deletes, delete_count=deletes, saved_at=saved_at)
        lock_name = f"save:{record_type}:{lea}"
        with self._write_transaction(lock_name) as conn:
            done = conn.execute(sa.select(schema.runs.c.id).where(
                schema.runs.c.record_type == record_type, schema.runs.c.reporting_lea == lea,
                schema.runs.c.run_id == run_id)).first()
            if done is not None:
                log.info("%s run %s was already saved: nothing saved", record_type, run_id)
                return 0
            if expected_base is not None:
                latest = _latest_run(conn, record_type, lea, academic_year)
                if latest[0] != expected_base:
                    raise HistoryChanged(
                        f"{record_type} run {run_id} was not saved: run {latest[1]} was saved for {lea} "
                        f"{academic_year} after this run compared its records with the history.")
            run_pk = int(conn.execute(schema.runs.insert(), run_row).inserted_primary_key[0])
            # In chunks, in file order (line numbers keep it): memory stays bounded whatever the run's size. A
            # worker thread computes the next chunk (DuckDB and pyarrow release the GIL) while this one is written,
            # then puts the current state's rows in key order while the last chunks are written.
            delta: list[pa.Table] = []
            with ThreadPoolExecutor(max_workers=1) as worker:
                def compute(start: int) -> Future[pa.Table]:
                    part = published.slice(start, SAVE_CHUNK) if isinstance(published, pa.Table) \
                        else published.iloc[start:start + SAVE_CHUNK]
                    return worker.submit(_record_rows, part, layout, first_line=start + 1)

                sorted_delta: Future[pa.Table] | None = None

                def logged() -> Iterator[pa.Table]:
                    nonlocal sorted_delta
                    pending = compute(0) if n else None
                    for start in range(0, n, SAVE_CHUNK):
                        rows = pending.result()
                        pending = compute(start + SAVE_CHUNK) if start + SAVE_CHUNK < n else None
                        delta.append(rows.select(DELTA_COLUMNS))
                        if pending is None:
                            sorted_delta = worker.submit(_last_of_each_key, delta)
                        yield rows.select(LOG_COLUMNS[1:]).add_column(0, "run_pk", pa.array([run_pk] * rows.num_rows,
                                                                                             pa.int64()))
                        del rows

                self._write(conn, schema.LOG, LOG_COLUMNS, logged())
                if sorted_delta is not None:
                    self._apply_delta(conn, sorted_delta.result(), record_type, lea, academic_year, run_pk)
            conn.execute(sa.delete(schema.leases).where(*_lease_scope(record_type, lea, academic_year),
                                                        schema.leases.c.run_id == run_id))
        log.info("%s run %s saved: %d records (%d deletes)", record_type, run_id, n, deletes)
        return n

    def _apply_delta(self, conn: sa.Connection, delta: pa.Table, record_type: str, lea: str, academic_year: str,
                     run_pk: int) -> None:
        """The run's records (``_last_of_each_key``) onto the current state: adds/updates upserted, D's removed."""
        is_delete = pc.fill_null(pc.equal(delta["transaction_type"], "D"), False)
        upserts = delta.filter(pc.invert(is_delete)).drop_columns(["transaction_type"])
        removals = delta.filter(is_delete)["op_key"].to_pylist()
        n = upserts.num_rows
        pg = conn.dialect.name == "postgresql"
        scope_id, first = _scope_id(conn, record_type, lea, academic_year)
        upserts = upserts.add_column(0, "scope_id", pa.array([scope_id] * n, pa.int32()))
        upserts = upserts.append_column("run_pk", pa.array([run_pk] * n, pa.int64())).select(CURRENT_COLUMNS)
        if pg:      # bytea in COPY's text form: \x and the hex digits
            at = CURRENT_COLUMNS.index("record_hash")
            hexed = pc.binary_join_element_wise("\\x", upserts["record_hash"], "")
            upserts = upserts.set_column(at, "record_hash", hexed)
        updates = ", ".join(f"{col} = excluded.{col}" for col in CURRENT_COLUMNS[2:])
        conflict = f" ON CONFLICT (scope_id, op_key) DO UPDATE SET {updates}"
        if first:        # the first submission of this scope: straight in, nothing to update or remove
            self._write(conn, schema.CURRENT, CURRENT_COLUMNS, [upserts])
            return
        c = schema.current.c
        if pg:
            conn.exec_driver_sql("CREATE TEMP TABLE calpads_history_delta "
                                 f"(LIKE {schema.CURRENT} INCLUDING DEFAULTS) ON COMMIT DROP")
            self._write(conn, "calpads_history_delta", CURRENT_COLUMNS, [upserts])
            cols = ", ".join(CURRENT_COLUMNS)
            conn.exec_driver_sql(f"INSERT INTO {schema.CURRENT} ({cols}) SELECT {cols} "  # noqa: S608
                                 f"FROM calpads_history_delta{conflict}")
            if removals:
                conn.execute(sa.delete(schema.current).where(c.scope_id == scope_id, c.op_key == sa.func.any(
                    sa.bindparam("keys", removals, type_=sa.ARRAY(sa.Text)))))
            return
        self._write(conn, schema.CURRENT, CURRENT_COLUMNS, [upserts], suffix=conflict)
        if removals:
            conn.exec_driver_sql(f"DELETE FROM {schema.CURRENT} WHERE scope_id = ? AND op_key = ?",  # noqa: S608
                                 [(scope_id, k) for k in removals])

    @staticmethod
    def _write(conn: sa.Connection, table: str, columns: list[str], batches: Iterable[pa.Table], *,
               suffix: str = "") -> None:
        """Append rows (``batches`` of the ``columns``): one COPY on PostgreSQL; on SQLite INSERTs of many rows each
        (``suffix``: an ON CONFLICT clause), which bind the same values as executemany with a statement step per row
        but cost 40% less at 1.5M rows."""
        if conn.dialect.name == "postgresql":
            _copy_pg(conn, table, columns, batches)
            return
        limit = conn.connection.dbapi_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = max(1, min(SQLITE_ROWS_PER_INSERT, limit // len(columns)))
        marks = "(" + ", ".join("?" * len(columns)) + ")"
        for rows in batches:
            for start in range(0, rows.num_rows, per):
                batch = rows.slice(start, per)
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([marks] * batch.num_rows)}{suffix}"  # noqa: S608
                conn.exec_driver_sql(sql, tuple(chain.from_iterable(zip(*(batch[c].to_pylist() for c in columns),
                                                                        strict=True))))

    @contextmanager
    def _read_transaction(self) -> Iterator[sa.Connection]:
        """One snapshot for several reads (the runs and the current state agree): REPEATABLE READ on
        PostgreSQL; on SQLite an explicit deferred BEGIN (pysqlite opens none for SELECTs), whose shared
        lock keeps writers out until the reads are done."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                if conn.connection.dbapi_connection.in_transaction:
                    conn.exec_driver_sql("COMMIT")

    @contextmanager
    def _write_transaction(self, lock_name: str) -> Iterator[sa.Connection]:
        """A write transaction holding the save lock: the lock row FOR UPDATE on PostgreSQL, the
        database write lock (BEGIN IMMEDIATE) on SQLite."""
        engine = self.engine
        if engine.dialect.name == "postgresql":
            insert = _pg_insert(schema.locks).values(name=lock_name).on_conflict_do_nothing()
            with engine.begin() as conn:
                conn.execute(insert)
            with engine.connect() as conn, conn.begin():
                conn.execute(sa.select(schema.locks.c.name).where(schema.locks.c.name == lock_name)
                             .with_for_update())
                yield conn
            return
        if engine.dialect.name != "sqlite":
            raise NotImplementedError(f"history store on {engine.dialect.name}: only SQLite and PostgreSQL")
        with _sqlite_immediate(engine) as conn:
            yield conn

    # ------------------------------------------------------------------ one submission at a time
    @store_errors("read the submission history")
    def history_base(self, record_type: str, lea: str, academic_year: str, run_id: str) -> tuple[int, bool]:
        """(base, already saved): the id of the latest saved run of this record type, LEA and year that
        ``run_id`` compares against (0 when none) -- for a run saved already, the latest before it."""
        runs = schema.runs
        with self.engine.connect() as conn:
            own = conn.execute(sa.select(runs.c.id).where(
                runs.c.record_type == record_type, runs.c.reporting_lea == lea, runs.c.run_id == run_id)).scalar()
            where = [runs.c.record_type == record_type, runs.c.reporting_lea == lea,
                     runs.c.academic_year == academic_year]
            if own is not None:
                where.append(runs.c.id < own)
            base = conn.execute(sa.select(sa.func.max(runs.c.id)).where(*where)).scalar()
        return int(base or 0), own is not None

    @store_errors("record this run's claim on the submission history")
    def claim_submission(self, record_type: str, lea: str, academic_year: str, run_id: str, base: int,
                         *, now: datetime | None = None) -> None:
        """Hold the lease from the diff to the save. Refused (SubmissionInProgress) while another run holds
        a lease younger than LEASE_HOURS, or (HistoryChanged) when a run was saved since ``base`` was read."""
        now = now or datetime.now(UTC)
        leases = schema.leases
        with self._write_transaction(f"save:{record_type}:{lea}") as conn:
            latest = _latest_run(conn, record_type, lea, academic_year)
            if latest[0] != base:
                raise HistoryChanged(f"{record_type} run {run_id}: run {latest[1]} was saved for {lea} "
                                     f"{academic_year} while this run compared its records with the history.")
            held = conn.execute(sa.select(leases.c.run_id, leases.c.taken_at).where(
                *_lease_scope(record_type, lea, academic_year))).first()
            if held is not None and held.run_id != run_id:
                taken = held.taken_at if held.taken_at.tzinfo else held.taken_at.replace(tzinfo=UTC)
                if now - taken < timedelta(hours=LEASE_HOURS):
                    raise SubmissionInProgress(
                        f"{record_type} run {run_id} stopped before publishing: run {held.run_id} (started its "
                        f"comparison at {taken:%Y-%m-%d %H:%M} UTC) will save {record_type} history for {lea} "
                        f"{academic_year} and has not finished.")
                log.warning("Run %s's lease on %s %s %s is older than %d hours: taken over by run %s",
                            held.run_id, record_type, lea, academic_year, LEASE_HOURS, run_id)
            conn.execute(sa.delete(leases).where(*_lease_scope(record_type, lea, academic_year)))
            conn.execute(sa.insert(leases).values(record_type=record_type, reporting_lea=lea,
                                                  academic_year=academic_year, run_id=run_id, base_run_pk=base,
                                                  taken_at=now))

    @store_errors("release this run's claim on the submission history")
    def release_submission(self, record_type: str, lea: str, academic_year: str, run_id: str) -> bool:
        """Give up the run's lease (the run failed after its diff). True when it held one."""
        with self._write_transaction(f"save:{record_type}:{lea}") as conn:
            gone = conn.execute(sa.delete(schema.leases).where(*_lease_scope(record_type, lea, academic_year),
                                                               schema.leases.c.run_id == run_id)).rowcount
        return bool(gone)

    # ------------------------------------------------------------------ read
    @store_errors("read the submission history")
    def last_submitted(self, record_type: str, lea: str, academic_year: str,
                       exclude_run_id: str | None = None, as_of: int | None = None,
                       with_fields: bool = False, state_columns: Iterable[str] | None = None) -> pd.DataFrame:
        """What CALPADS holds for this record type, LEA and academic year: one row per operational key last
        sent as an add/update and not deleted since. Columns: hist_op_key, hist_hash, hist_run_id,
        hist_run_pk, hist_line (its log row), reporting_lea, academic_year_id and the layout's STATE_COLUMNS --
        what the diff reads; ``with_fields``: every layout column too (read from the log, slower).
        ``state_columns``: only those of the STATE_COLUMNS (the diff stage reads the ones its scope filter needs;
        the rest of the few rows that may become deletes comes from their log rows, calpads.history.diff).

        ``exclude_run_id``: the history as it was before that run was saved (its rows and any saved after it
        are left out), so that a re-run of an already saved run diffs against the same base and publishes
        the same files. A run never saved: the whole history.
        ``as_of``: only runs up to that id (``history_base``), so that the rows read are that base.
        Both are read from the log: the current state, minus the keys later runs touched, plus those keys'
        latest log rows before them.
        """
        layout = load_layout(record_type)
        unkept = [c for c in record_identity(layout) if c not in schema.STATE_COLUMNS]
        if unkept:   # still_in_sis would match nothing on them: never weaken the delete-safety rule silently
            raise RuntimeError(f"{record_type}'s record_identity has {', '.join(unkept)}, which the history's current "
                               "state does not keep (calpads.history.schema.STATE_COLUMNS): add it with a migration")
        runs = schema.runs
        scope = [runs.c.record_type == layout.record_type, runs.c.reporting_lea == lea,
                 runs.c.academic_year == academic_year]
        with self._read_transaction() as conn:
            since = None       # the first run whose records are left out (the history before it is read)
            if exclude_run_id is not None:
                since = conn.execute(sa.select(runs.c.id).where(
                    runs.c.record_type == layout.record_type, runs.c.reporting_lea == lea,
                    runs.c.run_id == exclude_run_id)).scalar()
            if as_of is not None:
                later = conn.execute(sa.select(sa.func.min(runs.c.id)).where(*scope, runs.c.id > as_of)).scalar()
                since = later if since is None else min(since, later) if later is not None else since
            wanted = [c for c in schema.STATE_COLUMNS if c in layout.columns and
                      (state_columns is None or c in set(state_columns))]
            read = [*STATE_READ[:4], *wanted]
            state = _read_current(conn, layout.record_type, lea, academic_year,
                                  STATE_READ if since is not None else read)
            if since is not None:
                state = _rewind(conn, state, layout, lea, academic_year, int(since)).select(read)
            run_ids = dict(conn.execute(sa.select(runs.c.id, runs.c.run_id).where(*scope)).all())
        out = state.to_pandas()
        out = out.rename(columns={"op_key": HIST_OP_KEY, "record_hash": HIST_HASH, "run_pk": HIST_RUN_PK,
                                  "line": HIST_LINE})
        # Series.map(run_ids).astype(object) without a Python object per row: each row takes its run's one str.
        names = np.array([*run_ids.values(), np.nan], dtype=object)     # NaN: a run not found, as map gives
        at = pd.Index(list(run_ids), dtype=np.int64).get_indexer(out[HIST_RUN_PK].to_numpy())
        out[HIST_RUN_ID] = pd.Series(names[at], index=out.index, dtype=object)
        # The text columns a scalar assignment makes, built in one piece (pandas repeats the value by a take).
        out["reporting_lea"] = pd.Series(_repeated(lea, len(out)), index=out.index, dtype="str")
        out["academic_year_id"] = pd.Series(_repeated(academic_year, len(out)), index=out.index, dtype="str")
        if with_fields:
            fields = self.fields_of(layout, out)
            out = pd.concat([fields, out.drop(columns=[c for c in out.columns if c in fields.columns])], axis=1)
        return out

    @store_errors("read the submission history")
    def fields_of(self, layout: Layout, rows: pd.DataFrame) -> pd.DataFrame:
        """The layout fields, as submitted, of history rows (``hist_run_pk``, ``hist_line`` from
        ``last_submitted``), in their order: the diff reads them for the records that become deletes."""
        wanted = pd.DataFrame({"run_pk": rows[HIST_RUN_PK].to_numpy(dtype=np.int64),
                               "line": rows[HIST_LINE].to_numpy(dtype=np.int64)})
        found: list[tuple[int, int, str]] = []
        lg = schema.log
        with self.engine.connect() as conn:
            pg = conn.dialect.name == "postgresql"
            for run_pk, group in wanted.groupby("run_pk", sort=True):
                lines = sorted(set(group["line"].tolist()))
                # PostgreSQL: one array parameter per run; SQLite: under its 999 bound parameters per query.
                step = len(lines) if pg else READ_CHUNK
                for start in range(0, len(lines), step):
                    chunk = lines[start:start + step]
                    which = (lg.c.line == sa.func.any(sa.bindparam("lines", chunk, type_=sa.ARRAY(sa.BigInteger)))
                             if pg else lg.c.line.in_(chunk))
                    found += conn.execute(sa.select(lg.c.run_pk, lg.c.line, lg.c.fields).where(
                        lg.c.run_pk == int(run_pk), which)).all()
        stored = pd.DataFrame(found, columns=["run_pk", "line", "fields"]).astype({"run_pk": "int64", "line": "int64"})
        joined = wanted.merge(stored, on=["run_pk", "line"], how="left")
        missing = int(joined["fields"].isna().sum())
        if missing:
            raise RuntimeError(f"{missing} {layout.record_type} history rows point to no saved record: the store is "
                               "damaged (restore it from its backup)")
        return split_fields(joined["fields"], layout)

    @store_errors("read the submission history")
    def records_for_student(self, record_type: str, local_student_id: str | None = None, ssid: str | None = None,
                            lea: str | None = None) -> pd.DataFrame:
        """Every saved record for one student (by Local Student ID or SSID), oldest first:
        saved_at, run_id, reporting_lea, academic_year, transaction_type, then the layout fields."""
        if not local_student_id and not ssid:
            raise ValueError("give local_student_id or ssid")
        layout = load_layout(record_type)
        lg, runs = schema.log, schema.runs
        who = [lg.c.local_student_id == local_student_id] if local_student_id else []
        who += [lg.c.ssid == ssid] if ssid else []
        where = [runs.c.record_type == layout.record_type, sa.or_(*who)]
        if lea:
            where.append(runs.c.reporting_lea == lea)
        query = (sa.select(runs.c.saved_at, runs.c.run_id, runs.c.reporting_lea, runs.c.academic_year,
                           lg.c.transaction_type, lg.c.fields).join(runs, runs.c.id == lg.c.run_pk)
                 .where(*where).order_by(lg.c.run_pk, lg.c.line))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        meta = ["saved_at", "run_id", "reporting_lea", "academic_year", "transaction_type"]
        out = pd.DataFrame([row[:5] for row in rows], columns=meta, dtype=object)
        fields = split_fields(pd.Series([row[5] for row in rows], dtype=object), layout)
        for c in layout.columns:
            if c not in meta:
                out[c] = pd.Series(fields[c].to_numpy(dtype=object), dtype=object)
        return out
    @store_errors("read the submission history")
    def runs(self, record_type: str | None = None, lea: str | None = None,
             academic_year: str | None = None) -> pd.DataFrame:
        """The saved runs, oldest first (params as a JSON string)."""
        t = schema.runs
        where = []
        if record_type:
            where.append(t.c.record_type == record_type.upper())
        if lea:
            where.append(t.c.reporting_lea == lea)
        if academic_year:
            where.append(t.c.academic_year == academic_year)
        query = sa.select(t.c.saved_at, t.c.record_type, t.c.reporting_lea, t.c.academic_year, t.c.run_id,
                          t.c.record_count, t.c.add_update_count, t.c.delete_count, t.c.params).where(*where)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.id)).all()
        return pd.DataFrame(rows, columns=[c.name for c in query.selected_columns], dtype=object)


# ---------------------------------------------------------------------- helpers
@store_errors("be opened")
def check_reachable(engine: sa.Engine) -> None:
    """Open and close a connection: a missing or unreachable store fails here, naming the store."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


@contextmanager
def _sqlite_immediate(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A SQLite transaction that holds the database write lock from its start. pysqlite begins
    transactions lazily (deferred) and never before DDL; this way a second writer waits here
    (busy timeout) instead of failing when it upgrades a read lock."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")   # pysqlite: no implicit BEGIN/COMMIT
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # SQLite may have rolled back already (disk full, I/O error): a second ROLLBACK would fail
            # with "no transaction is active" and hide the real error.
            if conn.connection.dbapi_connection.in_transaction:
                conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")


def _latest_run(conn: sa.Connection, record_type: str, lea: str, academic_year: str) -> tuple[int, str | None]:
    """(id, run id) of the latest saved run of a record type, LEA and year; (0, None) when none."""
    runs = schema.runs
    row = conn.execute(sa.select(runs.c.id, runs.c.run_id).where(
        runs.c.record_type == record_type, runs.c.reporting_lea == lea, runs.c.academic_year == academic_year)
        .order_by(runs.c.id.desc()).limit(1)).first()
    return (int(row.id), row.run_id) if row is not None else (0, None)


def _lease_scope(record_type: str, lea: str, academic_year: str) -> list[Any]:
    c = schema.leases.c
    return [c.record_type == record_type, c.reporting_lea == lea, c.academic_year == academic_year]


def _scope_id(conn: sa.Connection, record_type: str, lea: str, academic_year: str) -> tuple[int, bool]:
    """(id, empty) of the scope's ``calpads_history_scopes`` row, added when missing (under the save lock, so
    no other save adds it meanwhile); empty: the current state holds no row of it yet."""
    sc, c = schema.scopes, schema.current.c
    where = [sc.c.record_type == record_type, sc.c.reporting_lea == lea, sc.c.academic_year == academic_year]
    found = conn.execute(sa.select(sc.c.id).where(*where)).scalar()
    if found is None:
        found = conn.execute(sa.insert(sc).values(record_type=record_type, reporting_lea=lea,
                                                  academic_year=academic_year)).inserted_primary_key[0]
        return int(found), True
    empty = conn.execute(sa.select(c.op_key).where(c.scope_id == found).limit(1)).first() is None
    return int(found), empty


def _check_belongs(published: pd.DataFrame | pa.Table, lea: str, academic_year: str) -> None:
    """Every record must be the run's own LEA and year: one LEA's data is never saved as another's."""
    for column, expected in (("reporting_lea", lea), ("academic_year_id", academic_year)):
        if column in published.column_names if isinstance(published, pa.Table) else column in published.columns:
            wrong = len(published) - _count_equal(published, column, expected)
            if wrong:
                raise ValueError(f"{wrong} records have a {column} other than the run's {expected}: nothing saved")


def _count_equal(published: pd.DataFrame | pa.Table, column: str, value: str) -> int:
    """How many records have ``value`` in ``column`` (none when the column is missing)."""
    if not len(published):
        return 0
    if isinstance(published, pa.Table):
        if column not in published.column_names:
            return 0
        return int(pc.sum(pc.fill_null(pc.equal(published[column].cast(pa.string()), value), False)).as_py() or 0)
    return int(string_frame(published, [column])[column].eq(value).sum())


def _record_rows(published: pd.DataFrame | pa.Table, layout: Layout, *, first_line: int) -> pa.Table:
    """Per record, computed in DuckDB: its line in the run, op key, hash, type, student ids, the state
    columns and its fields joined by FIELD_SEPARATOR. A value holding the separator is refused (the
    published file cannot hold one either: calpads.publish.writer)."""
    lines = pa.array(np.arange(first_line, first_line + len(published), dtype=np.int64))
    source: Any
    if isinstance(published, pa.Table):
        missing = [c for c in layout.columns if c not in published.column_names]
        source = published.select([c for c in layout.columns if c in published.column_names])
        for c in missing:
            source = source.append_column(c, pa.nulls(len(published), pa.string()))
        source = source.append_column("__line", lines)
    else:
        frame = string_frame(published, layout.columns).reset_index(drop=True)
        try:        # DuckDB reads an Arrow table faster than a frame of Python objects
            source = pa.Table.from_pandas(frame, preserve_index=False).append_column("__line", lines)
        except (pa.ArrowInvalid, pa.ArrowTypeError):   # values of mixed types (a hand-made frame): DuckDB casts them
            source = frame.assign(__line=lines.to_numpy())
    picked = {c: (f"CAST({ident(c)} AS VARCHAR)" if c in layout.columns else "CAST(NULL AS VARCHAR)")
              for c in ("local_student_id", "ssid")}
    picked |= {c: (f"nullif(CAST({ident(c)} AS VARCHAR), '')" if c in layout.columns else "CAST(NULL AS VARCHAR)")
               for c in schema.STATE_COLUMNS}
    sql = f"""
        SELECT __line AS line, {op_key_sql(layout)} AS op_key, {hash_sql(layout)} AS record_hash,
               CASE WHEN transaction_type = 'D' THEN 'D' END AS transaction_type,
               {", ".join(f"{expr} AS {ident(c)}" for c, expr in picked.items())},
               {fields_sql(layout.columns)} AS fields
        FROM source
    """  # noqa: S608  (layout column names only)
    with duckdb.connect() as con:
        con.register("source", source)
        table = con.sql(sql).to_arrow_table()
    del source
    wrong = pc.not_equal(pc.count_substring(table["fields"], FIELD_SEPARATOR), len(layout.columns) - 1)
    bad = [(line,) for line in table["line"].filter(wrong).slice(0, 10).to_pylist()]
    if bad:
        ids = [str(v) for v in table["local_record_id"].take([line - first_line for (line,) in bad]).to_pylist()] \
            if "local_record_id" in layout.columns else []
        raise ValueError(f"{layout.record_type} records with a value holding a caret ({FIELD_SEPARATOR}) cannot be "
                         f"saved (Local Record IDs {', '.join(ids)}): nothing saved")
    return table


def split_fields(texts: pd.Series, layout: Layout) -> pd.DataFrame:
    """Stored field texts back to a frame of the layout columns (str, blank = None), split by DuckDB."""
    columns = layout.columns
    frame = pd.DataFrame({"fields": texts.to_numpy(dtype=object)}, dtype=object)
    select = ", ".join(f"nullif(p[{i + 1}], '') AS {ident(c)}" for i, c in enumerate(columns))
    with duckdb.connect() as con:
        con.register("frame", frame)
        parts = f"len(string_split(fields, '{FIELD_SEPARATOR}'))"
        counts = con.sql(f"SELECT count(*) FROM frame WHERE {parts} <> {len(columns)}").fetchall()[0][0]  # noqa: S608
        if counts:
            raise RuntimeError(f"{counts} saved {layout.record_type} records do not have the layout's "
                               f"{len(columns)} fields: the layout changed without a history migration")
        table = con.sql(f"SELECT {select} FROM (SELECT string_split(fields, '{FIELD_SEPARATOR}') AS p "  # noqa: S608
                        "FROM frame)").to_arrow_table()
    return pd.DataFrame({c: table.column(c).to_numpy(zero_copy_only=False) for c in columns}, dtype=object)


def _read_current(conn: sa.Connection, record_type: str, lea: str, academic_year: str,
                  columns: list[str] = STATE_READ) -> pa.Table:
    """The current-state rows of one scope (``columns`` of STATE_READ, the hash as its hex digits): straight into
    Arrow where it can (``_read_current_copy``, ``_read_current_adbc``), else COPY ... TO STDOUT on PostgreSQL
    (parsed by pyarrow), one fetch on SQLite."""
    sc = schema.scopes.c
    scope_id = conn.execute(sa.select(sc.id).where(sc.record_type == record_type, sc.reporting_lea == lea,
                                                   sc.academic_year == academic_year)).scalar()
    if scope_id is None:
        return _table([]).select(columns)
    pg = conn.dialect.name == "postgresql"
    fast = (_read_current_copy if pg else _read_current_adbc)(conn, int(scope_id), columns)
    if fast is not None:
        return fast
    return _read_current_rows(conn, record_type, int(scope_id)).select(columns)


def _read_current_rows(conn: sa.Connection, record_type: str, scope_id: int) -> pa.Table:
    """``_read_current`` without the Arrow readers."""
    if conn.dialect.name == "postgresql":
        columns = ", ".join("encode(record_hash, 'hex')" if c == "record_hash" else c for c in STATE_READ)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            buf = io.BytesIO()
            cursor.copy_expert(f"COPY (SELECT {columns} FROM {schema.CURRENT} WHERE scope_id = {int(scope_id)}) "  # noqa: S608
                               "TO STDOUT WITH (FORMAT csv)", buf)
        finally:
            cursor.close()
        if not buf.getbuffer().nbytes:
            return _table([])
        buf.seek(0)
        types = {c: pa.string() for c in STATE_READ} | {"run_pk": pa.int64(), "line": pa.int64()}
        return pacsv.read_csv(buf, read_options=pacsv.ReadOptions(column_names=STATE_READ),
                              convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                                   quoted_strings_can_be_null=False))
    # SQLite joins the rows into one text (values by U+001E, rows by U+001D, NULL as U+0015) that pyarrow splits:
    # sqlite3 hands each value to Python as an object, which cost more than anything else for 1.5M rows.
    joined = " || char(30) || ".join(f"coalesce(CAST({c} AS TEXT), char(21))" for c in STATE_READ)
    text = conn.exec_driver_sql(f"SELECT group_concat({joined}, char(29)) FROM {schema.CURRENT} "  # noqa: S608
                                "WHERE scope_id = ?", (int(scope_id),)).scalar()
    if not text:
        return _table([])
    values = pc.list_flatten(pc.split_pattern(pc.list_flatten(pc.split_pattern(pa.array([text]), "\x1d")), "\x1e"))
    del text
    width = len(STATE_READ)
    if len(values) % width:
        raise RuntimeError(f"the {record_type} current state holds a value with a control character: the store is "
                           "damaged (restore it from its backup)")
    out = {}
    for i, name in enumerate(STATE_READ):
        column = pc.take(values, pa.array(np.arange(i, len(values), width)))
        column = pc.if_else(pc.equal(column, "\x15"), pa.scalar(None, pa.string()), column)
        out[name] = pc.cast(column, pa.int64()) if name in ("run_pk", "line") else column
    return pa.table(out)


def _read_current_copy(conn: sa.Connection, scope_id: int, columns: list[str]) -> pa.Table | None:
    """The current-state rows of one scope from PostgreSQL as the SQL source reads a SIS (calpads.staging.sql_arrow):
    COPY streamed into pyarrow's CSV reader, parsed while the server sends it. None with another driver than
    psycopg2 (the caller reads otherwise)."""
    from calpads.staging.sql_arrow import NotFast, arrow_reader

    reader = arrow_reader(conn)
    if reader is None:
        return None
    c = schema.current.c
    selected = [sa.func.encode(c.record_hash, "hex").label(name) if name == "record_hash" else c[name]
                for name in columns]
    types = _state_schema(columns)
    try:
        batches = list(reader.batches(sa.select(*selected).where(c.scope_id == scope_id), types, READ_BATCH))
    except NotFast:   # the COPY was cancelled and its transaction rolled back: no second read in another snapshot
        raise RuntimeError("the history's current state could not be read as CSV from PostgreSQL") from None
    finally:
        reader.close()
    return pa.Table.from_batches(batches, types)


def _read_current_adbc(conn: sa.Connection, scope_id: int, columns: list[str]) -> pa.Table | None:
    """The current-state rows of one scope from a SQLite file through the ADBC SQLite driver, read-only, straight
    into Arrow (Python's sqlite3 makes an object of each value). None when it cannot be used: the driver missing, an
    in-memory database, WAL mode, any error of the driver; the caller then reads through ``conn``.

    The driver reads through its own connection: in SQLite's rollback-journal modes no write commits while ``conn``'s
    transaction holds its read lock, so it reads the same rows; under WAL it could read a later commit. The driver's
    low-level API: its DB-API module imports polars when installed (0.2 s)."""
    from calpads.staging.sql_arrow import sqlite_read_only_uri

    uri = sqlite_read_only_uri(conn.engine.url)
    if uri is None:
        return None
    if str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal":
        return None
    try:
        import adbc_driver_manager
        import adbc_driver_sqlite
    except ImportError:
        return None
    # A first row of the columns' types, dropped: the driver types a column by its first batch's values, and one
    # NULL throughout that batch would be read as INT64. UNION ALL reads the scope's rows after it, in table order.
    types = _state_schema(columns)
    typed = ", ".join(f"{0 if f.type == pa.int64() else repr('')} AS {f.name}" for f in types)
    sql = (f"SELECT {typed} UNION ALL SELECT {', '.join(columns)} FROM {schema.CURRENT} "  # noqa: S608
           f"WHERE scope_id = {int(scope_id)}")
    try:
        with closing(adbc_driver_sqlite.connect(uri)) as db, \
                closing(adbc_driver_manager.AdbcConnection(db)) as adbc, \
                closing(adbc_driver_manager.AdbcStatement(adbc)) as statement:
            statement.set_options(**{adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value: str(READ_BATCH)})
            statement.set_sql_query(sql)
            stream, _ = statement.execute_query()
            table = pa.RecordBatchReader._import_from_c(stream.address).read_all().slice(1)
        table.validate(full=True)   # the driver does not check that text is UTF-8
        return table.cast(types)
    except (adbc_driver_manager.Error, OSError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _repeated(text: str, n: int) -> pd.api.extensions.ExtensionArray:
    """``n`` times ``text`` as pandas' Arrow-backed text (what assigning the scalar to a column of n rows makes)."""
    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    array = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))
    return pd.array(array, dtype="str")


def _state_schema(columns: list[str]) -> pa.Schema:
    return pa.schema([STATE_SCHEMA.field(c) for c in columns])


def _table(rows: list[Any]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(STATE_READ)
    return pa.table([pa.array(values, f.type) for f, values in zip(STATE_SCHEMA, cols, strict=True)],
                    schema=STATE_SCHEMA)


def _rewind(conn: sa.Connection, state: pa.Table, layout: Layout, lea: str, academic_year: str,
            since: int) -> pa.Table:
    """The state before run ``since`` was saved: the keys that run and later ones sent go back to their latest
    log row before it (gone when that was a D, or when there was none)."""
    lg, runs = schema.log, schema.runs
    scope = [runs.c.record_type == layout.record_type, runs.c.reporting_lea == lea,
             runs.c.academic_year == academic_year]
    touched = (sa.select(lg.c.op_key).join(runs, runs.c.id == lg.c.run_pk).where(*scope, lg.c.run_pk >= since))
    keys = {k for (k,) in conn.execute(touched).all()}
    if not keys:
        return state
    older = conn.execute(sa.select(lg.c.op_key, lg.c.run_pk, lg.c.line, lg.c.transaction_type, lg.c.fields)
                         .join(runs, runs.c.id == lg.c.run_pk)
                         .where(*scope, lg.c.run_pk < since, lg.c.op_key.in_(touched))).all()
    before = pd.DataFrame(older, columns=["op_key", "run_pk", "line", "transaction_type", "fields"], dtype=object)
    if len(before):
        before = before.astype({"run_pk": "int64", "line": "int64"}).sort_values(["run_pk", "line"])
        before = before.drop_duplicates("op_key", keep="last")
        before = before[before["transaction_type"].ne("D").to_numpy() | before["transaction_type"].isna().to_numpy()]
    fields = split_fields(before["fields"], layout) if len(before) else None
    kept = state.filter(pc.invert(pc.is_in(state["op_key"], pa.array(sorted(keys), pa.string()))))
    if fields is None or not len(fields):
        return kept
    back = _record_rows(fields, layout, first_line=1)
    back = pa.table({"op_key": pa.array(before["op_key"].tolist(), pa.string()), "record_hash": back["record_hash"],
                     "run_pk": pa.array(before["run_pk"].tolist(), pa.int64()),
                     "line": pa.array(before["line"].tolist(), pa.int64()),
                     **{c: back[c] for c in schema.STATE_COLUMNS}})
    return pa.concat_tables([kept, back.select(STATE_READ)])


def _last_of_each_key(chunks: list[pa.Table]) -> pa.Table:
    """A run's delta rows in key order, one per key: of a key sent twice in one run its later line counts (the
    published file's order), as it did for CALPADS. In key order, the primary key's index is filled page after
    page, not at random places."""
    delta = pa.concat_tables(chunks)
    delta = delta.take(pc.sort_indices(delta["op_key"]))    # a stable sort: lines stay ascending per key
    keys = delta["op_key"]
    if delta.num_rows > 1:
        last_of_key = pc.not_equal(keys.slice(0, delta.num_rows - 1), keys.slice(1))
        if not pc.all(last_of_key).as_py():
            delta = delta.filter(pa.concat_arrays([c for c in last_of_key.chunks] + [pa.array([True])]))
    return delta


class _CopyFailed(Exception):
    """PostgreSQL's reason for refusing a COPY, without the row it quotes."""


def _copy_pg(conn: sa.Connection, table: str, columns: list[str], batches: Iterable[pa.Table]) -> None:
    """One COPY ... FROM STDIN of every batch on the transaction's own connection, as CSV rendered by pyarrow (NULL
    unquoted-empty, "" quoted) in a thread of its own: the text reaches the server through a pipe while the next
    batch is computed and rendered, so the server never waits for it. Per-value Python string escaping cost more
    than the COPY itself."""
    read_fd, write_fd = os.pipe()
    failed: list[BaseException] = []

    def render() -> None:
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        try:
            for rows in batches:
                for start in range(0, rows.num_rows, PG_COPY_BATCH):
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(rows.slice(start, PG_COPY_BATCH).select(columns), sink, options)
                    text = memoryview(sink.getvalue())
                    while text:
                        text = text[os.write(write_fd, text):]
        except BaseException as exc:  # noqa: BLE001 - handed to the COPY's thread, which raises it
            failed.append(exc)
        finally:
            os.close(write_fd)

    import psycopg2

    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    cursor = conn.connection.dbapi_connection.cursor()
    renderer = threading.Thread(target=render, name="calpads-copy", daemon=True)
    try:
        with open(read_fd, "rb", buffering=0) as pipe:
            renderer.start()
            try:
                cursor.copy_expert(sql, pipe, size=COPY_READ_BYTES)
            except psycopg2.Error as exc:
                # The driver's own error, outside SQLAlchemy: its CONTEXT line can quote the row's values (a name,
                # an SSID). Only the server's one-line reason goes on, as a DBAPIError (the store's failure).
                reason = exc.diag.message_primary or type(exc).__name__
                raise sa.exc.DBAPIError(sql, None, _CopyFailed(f"{reason} ({exc.pgcode})")) from None
            finally:
                pipe.close()            # a failed COPY: the renderer's next write fails and it stops
                renderer.join()
    finally:
        cursor.close()
    if failed and not isinstance(failed[0], BrokenPipeError):
        raise failed[0]
