"""The submission history store in the ``calpads_store`` database (SQLite or PostgreSQL).

One row per record a saved run published (``calpads_history_records``), one row per saved run
(``calpads_history_runs``). The latest row per operational key is what CALPADS holds, unless
that row is a D.

Idempotency: a run is saved at most once per (record_type, reporting_lea, run_id) -- a unique
constraint on the runs table, checked under a lock row. A repeat (Airflow retry/clear) saves
nothing and returns 0. We skip rather than delete+insert: re-inserting would give the run new,
higher ids, so a retried old run would become "latest" over runs saved after it.

Concurrency: saves take a lock row per (record type, LEA) -- ``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite the transaction starts with ``BEGIN IMMEDIATE`` (the database write lock).
Serialised saves also keep ids in save order, which "latest per key" relies on.

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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as _pg_insert

from calpads.failures import HistoryChanged, SubmissionInProgress, store_errors
from calpads.history import schema
from calpads.history.diff import HIST_HASH, HIST_OP_KEY, HIST_RUN_ID
from calpads.history.keys import hash_sql, ident, json_sql, op_key_sql, string_frame
from calpads.layouts import Layout, load_layout

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BATCH = 20_000
PG_COPY_BATCH = 200_000
SAVE_CHUNK = 250_000
SQLITE_BUSY_MS = 300_000
_MIGRATE_LOCK = threading.Lock()
LEASE_HOURS = 12   # a lease older than this (its run died without releasing it) no longer blocks other runs

# Columns of calpads_history_records written by save_run, in order.
INSERT_COLUMNS = ["run_pk", "run_id", "record_type", "reporting_lea", "academic_year", "op_key", "key_values",
                  "updatable_hash", "transaction_type", "local_student_id", "ssid", "fields", "saved_at"]


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

    # ------------------------------------------------------------------ save
    @store_errors("save the submission history")
    def save_run(self, published: pd.DataFrame, layout: Layout, *, lea: str, academic_year: str, run_id: str,
                 params: dict[str, Any], expected_base: int | None = None) -> int:
        """Record a run's published records (layout columns; transaction_type None or "D") as
        submitted. Returns the rows saved: 0 when this run was already saved.

        ``expected_base``: the history the run compared against (``history_base`` at its diff); when the
        latest saved run of the record type, LEA and year is another one now, nothing is saved
        (HistoryChanged). None (a seed from an ODS file, the command line) saves without that check."""
        record_type = layout.record_type
        _check_belongs(published, lea, academic_year)
        n = len(published)
        types = string_frame(published, ["transaction_type"])["transaction_type"]
        deletes = int(types.eq("D").sum()) if n else 0
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
            run_pk = conn.execute(schema.runs.insert(), run_row).inserted_primary_key[0]
            # One timestamp for the whole run, as text: SQLAlchemy's SQLite format / ISO 8601 for COPY.
            stamp = _sqlite_datetime(saved_at) if conn.dialect.name == "sqlite" else saved_at.isoformat()
            # In chunks, in file order (ids keep the order): memory stays bounded whatever the run's size.
            for start in range(0, n, SAVE_CHUNK):
                rows = self._insert_frame(published.iloc[start:start + SAVE_CHUNK], layout)
                rows.insert(0, "run_pk", run_pk)
                rows.insert(1, "run_id", run_id)
                rows.insert(2, "record_type", record_type)
                rows.insert(3, "reporting_lea", lea)
                rows.insert(4, "academic_year", academic_year)
                rows["saved_at"] = stamp
                self._bulk_insert(conn, rows[INSERT_COLUMNS])
            conn.execute(sa.delete(schema.leases).where(*_lease_scope(record_type, lea, academic_year),
                                                        schema.leases.c.run_id == run_id))
        log.info("%s run %s saved: %d records (%d deletes)", record_type, run_id, n, deletes)
        return n

    @staticmethod
    def _insert_frame(published: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        """op_key, key JSON, hash, type, student ids and fields JSON per record, computed in DuckDB."""
        frame = string_frame(published, layout.columns).reset_index(drop=True)
        keys = list(layout.operational_keys)
        student = {c: (ident(c) if c in layout.columns else "NULL") for c in ("local_student_id", "ssid")}
        sql = f"""
            SELECT {op_key_sql(layout)} AS op_key, {json_sql(keys)} AS key_values,
                   {hash_sql(layout)} AS updatable_hash,
                   CASE WHEN transaction_type = 'D' THEN 'D' END AS transaction_type,
                   CAST({student['local_student_id']} AS VARCHAR) AS local_student_id,
                   CAST({student['ssid']} AS VARCHAR) AS ssid,
                   {json_sql(layout.columns)} AS fields
            FROM frame
        """  # noqa: S608  (layout column names only)
        with duckdb.connect() as con:
            con.register("frame", frame)
            table = con.sql(sql).to_arrow_table()
        return pd.DataFrame({name: table.column(name).to_pylist() for name in table.column_names},
                            dtype=object)

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

    def _bulk_insert(self, conn: sa.Connection, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        columns = list(rows.columns)
        if conn.dialect.name == "postgresql":
            self._copy_pg(conn, rows, columns)
            return
        # Column lists zipped into tuples: itertuples over pandas' Arrow-backed text columns is several times slower.
        values = list(zip(*(rows[c].tolist() for c in columns), strict=True))
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {schema.RECORDS} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        for start in range(0, len(values), SQLITE_BATCH):
            conn.exec_driver_sql(sql, values[start:start + SQLITE_BATCH])

    @staticmethod
    def _copy_pg(conn: sa.Connection, rows: pd.DataFrame, columns: list[str]) -> None:
        """COPY ... FROM STDIN (CSV rendered by pyarrow: NULL unquoted-empty, "" quoted), in batches, on
        the transaction's own connection. Per-value Python string escaping cost more than the COPY itself."""
        table = pa.table({c: pa.array(rows[c], from_pandas=True) for c in columns})
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            sql = f"COPY {schema.RECORDS} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
            for start in range(0, table.num_rows, PG_COPY_BATCH):
                buf = io.BytesIO()
                pacsv.write_csv(table.slice(start, PG_COPY_BATCH), buf,
                                pacsv.WriteOptions(include_header=False, quoting_style="needed"))
                buf.seek(0)
                cursor.copy_expert(sql, buf)
        finally:
            cursor.close()

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
                       exclude_run_id: str | None = None, as_of: int | None = None) -> pd.DataFrame:
        """The latest saved row per operational key for this record type, LEA and academic year,
        leaving out keys whose latest row is a D. Layout columns + hist_op_key, hist_hash, hist_run_id.

        ``exclude_run_id``: read the history as it was before that run was saved (its rows and any
        saved after it are left out), so that a re-run of an already saved run diffs against the
        same base and publishes the same files. A run never saved: the whole history.
        ``as_of``: only runs up to that id (``history_base``), so that the rows read are that base.
        """
        layout = load_layout(record_type)
        r, runs = schema.records, schema.runs
        scope = [r.c.record_type == layout.record_type, r.c.reporting_lea == lea, r.c.academic_year == academic_year]
        with self.engine.connect() as conn:
            if exclude_run_id is not None:
                pk = conn.execute(sa.select(runs.c.id).where(
                    runs.c.record_type == layout.record_type, runs.c.reporting_lea == lea,
                    runs.c.run_id == exclude_run_id)).scalar()
                if pk is not None:
                    scope.append(r.c.run_pk < pk)
            if as_of is not None:   # the history as of a base read earlier (history_base): later saves left out
                scope.append(r.c.run_pk <= as_of)
            latest = sa.select(sa.func.max(r.c.id).label("id")).where(*scope).group_by(r.c.op_key).subquery()
            # No ORDER BY: sorting 1.5M keys costs seconds; the pipeline sorts what it publishes.
            query = (sa.select(r.c.op_key, r.c.updatable_hash, r.c.run_id, r.c.fields)
                     .join(latest, latest.c.id == r.c.id)
                     .where(sa.or_(r.c.transaction_type.is_(None), r.c.transaction_type != "D")))
            rows = conn.execute(query).all()
        # Columns straight from the row tuples: DataFrame(rows) would probe every Row object.
        cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
        op_keys, hashes, run_ids, texts = (_objects(c) for c in cols)
        fields = _parse_fields(texts, layout.columns)
        fields[HIST_OP_KEY] = op_keys
        fields[HIST_HASH] = hashes
        fields[HIST_RUN_ID] = run_ids
        return fields

    @store_errors("read the submission history")
    def records_for_student(self, record_type: str, local_student_id: str | None = None, ssid: str | None = None,
                            lea: str | None = None) -> pd.DataFrame:
        """Every saved record for one student (by Local Student ID or SSID), oldest first:
        saved_at, run_id, reporting_lea, academic_year, transaction_type, then the layout fields."""
        if not local_student_id and not ssid:
            raise ValueError("give local_student_id or ssid")
        layout = load_layout(record_type)
        r = schema.records
        who = [r.c.local_student_id == local_student_id] if local_student_id else []
        who += [r.c.ssid == ssid] if ssid else []
        where = [r.c.record_type == layout.record_type, sa.or_(*who)]
        if lea:
            where.append(r.c.reporting_lea == lea)
        query = (sa.select(r.c.saved_at, r.c.run_id, r.c.reporting_lea, r.c.academic_year, r.c.transaction_type,
                           r.c.fields).where(*where).order_by(r.c.id))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        meta = ["saved_at", "run_id", "reporting_lea", "academic_year", "transaction_type"]
        out = pd.DataFrame([row[:5] for row in rows], columns=meta, dtype=object)
        fields = [json.loads(row[5]) for row in rows]
        extra = [c for c in layout.columns if c not in meta]
        for c in extra:
            out[c] = pd.Series([f.get(c) for f in fields], dtype=object)
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


def _check_belongs(published: pd.DataFrame, lea: str, academic_year: str) -> None:
    """Every record must be the run's own LEA and year: one LEA's data is never saved as another's."""
    for column, expected in (("reporting_lea", lea), ("academic_year_id", academic_year)):
        if column in published.columns and len(published):
            wrong = int((published[column].fillna("") != expected).sum())
            if wrong:
                raise ValueError(f"{wrong} records have a {column} other than the run's {expected}: nothing saved")


def _objects(values: Any) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _parse_fields(texts: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """JSON field texts to a frame of the layout columns (str or None), parsed by DuckDB."""
    spec = json.dumps({c: "VARCHAR" for c in columns})
    select = ", ".join(f"s.{ident(c)} AS {ident(c)}" for c in columns)
    frame = pd.DataFrame({"fields": texts}, dtype=object)
    # json_transform needs a constant structure: a literal of layout column names (no quotes in them).
    sql = f"SELECT {select} FROM (SELECT json_transform(fields, '{spec}') AS s FROM frame)"  # noqa: S608
    with duckdb.connect() as con:
        con.register("frame", frame)
        table = con.sql(sql).to_arrow_table()
    return pd.DataFrame({c: table.column(c).to_numpy(zero_copy_only=False) for c in columns}, dtype=object)


def _sqlite_datetime(d: datetime) -> str:
    # SQLAlchemy's SQLite DateTime storage format, so Core reads these rows back as datetimes.
    return d.strftime("%Y-%m-%d %H:%M:%S.%f")
