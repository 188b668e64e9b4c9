"""The history tables. Alembic migrations (``migrations/versions``) create them; this module is
what the code reads and writes, and must stay in step with the latest migration."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

VERSION_TABLE = "calpads_alembic_version"
HEAD_REVISION = "0003"   # the latest migration's revision (migrations/versions): a store there needs no upgrade
RUNS = "calpads_history_runs"
LOG = "calpads_history_log"
CURRENT = "calpads_history_current"
SCOPES = "calpads_history_scopes"
LOCKS = "calpads_history_locks"
LEASES = "calpads_history_leases"

# Keys compared byte by byte on PostgreSQL (COLLATE "C"): building and searching their indexes skips the
# locale's collation, several times slower for 1.5M keys. SQLite compares bytes anyway (BINARY).
KeyText = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

# A BIGINT primary key that is still SQLite's rowid (INTEGER PRIMARY KEY) there.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The record hash: the first 128 bits of the sha256 of the joined updatable values (calpads.history.keys), as
# 16 bytes on PostgreSQL (bytea) and as its 32 hex digits on SQLite; read back as the hex digits on both.
RecordHash = sa.String(32).with_variant(postgresql.BYTEA(), "postgresql")

metadata = sa.MetaData()

runs = sa.Table(
    RUNS, metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("record_type", sa.String(8), nullable=False),
    sa.Column("reporting_lea", sa.String(7), nullable=False),
    sa.Column("academic_year", sa.String(9), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("params", sa.Text, nullable=False),              # JSON
    sa.Column("record_count", sa.Integer, nullable=False),
    sa.Column("add_update_count", sa.Integer, nullable=False),
    sa.Column("delete_count", sa.Integer, nullable=False),
    sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    # Idempotency: one save per run (an Airflow retry/clear of the same run saves nothing new).
    sa.UniqueConstraint("record_type", "reporting_lea", "run_id", name="uq_calpads_history_runs_run"),
)

# NO_FOREIGN_KEYS: the log's run_pk and the current state's scope_id are not declared foreign keys. PostgreSQL
# checks a foreign key by a trigger per inserted row, which tripled the time to COPY 1.5M log rows (12.0 s
# against 4.2 s); the rows are written only by HistoryStore.save_run, in the transaction that inserts (or
# reads) the run and scope rows they name, and no code deletes runs or scopes.

# The transactions sent, append-only: one row per record a saved run published (an add/update, or a D), in
# file order (``line``). Migrated rows keep their old record id as ``line`` (unique and ordered within a run).
log = sa.Table(
    LOG, metadata,
    sa.Column("run_pk", BigId, primary_key=True),      # calpads_history_runs.id, see NO_FOREIGN_KEYS
    sa.Column("line", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("op_key", KeyText, nullable=False),               # key values joined by \x1f, blank = ""
    sa.Column("transaction_type", sa.String(1)),                # None (add/update) or "D"
    sa.Column("local_student_id", KeyText),
    sa.Column("ssid", KeyText),
    sa.Column("fields", sa.Text, nullable=False),               # the layout's values joined by "^", blank = None
    # No index on the student ids: each would double the cost of saving a 1.5M-record run, for a look-up
    # (records_for_student, the command line) that a coordinator runs now and then, scanning the log.
)

# One id per (record type, LEA, academic year) the current state holds: its rows carry the 4-byte id instead of
# the three texts, which halved the server's time to write 1.5M current rows and their primary key.
scopes = sa.Table(
    SCOPES, metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("record_type", sa.String(8), nullable=False),
    sa.Column("reporting_lea", sa.String(7), nullable=False),
    sa.Column("academic_year", sa.String(9), nullable=False),
    sa.UniqueConstraint("record_type", "reporting_lea", "academic_year", name="uq_calpads_history_scopes"),
)

# What CALPADS holds: one row per operational key last sent as an add/update and not deleted since. The diff
# reads the key, the hash and the columns its scope and delete-safety rules need (STATE_COLUMNS); the
# record's fields are its log row's (run_pk, line), read only for the records that become deletes.
current = sa.Table(
    CURRENT, metadata,
    sa.Column("scope_id", sa.Integer, primary_key=True),    # calpads_history_scopes.id, see NO_FOREIGN_KEYS
    sa.Column("op_key", KeyText, primary_key=True),
    sa.Column("record_hash", RecordHash, nullable=False),
    sa.Column("run_pk", BigId, nullable=False),
    sa.Column("line", sa.BigInteger, nullable=False),
    sa.Column("local_record_id", sa.Text),
    sa.Column("local_student_id", sa.Text),
    sa.Column("school_of_attendance", sa.Text),
    sa.Column("program_code", sa.Text),
    # SQLite: stored in key order (no rowid), so reading one scope is a sequential scan, not a lookup per row.
    sqlite_with_rowid=False,
)

# Layout columns kept in the current-state table: what ScopeFilter and still_in_sis read of a history row
# (besides its key and hash). A layout's record_identity must be among them.
STATE_COLUMNS = ("local_record_id", "local_student_id", "school_of_attendance", "program_code")

locks = sa.Table(
    LOCKS, metadata,
    sa.Column("name", sa.String(64), primary_key=True),
)

# One run at a time between its comparison with the history (diff) and its save, per record type, LEA
# and academic year: the run and the history it compared against (the latest saved run's id then; 0 = none).
leases = sa.Table(
    LEASES, metadata,
    sa.Column("record_type", sa.String(8), primary_key=True),
    sa.Column("reporting_lea", sa.String(7), primary_key=True),
    sa.Column("academic_year", sa.String(9), primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("base_run_pk", sa.BigInteger, nullable=False),
    sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
)
