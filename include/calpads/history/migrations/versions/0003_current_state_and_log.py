"""History as a current-state table and an append-only log of the transactions sent.

``calpads_history_records`` (one wide row per record sent, fields as a JSON object, "latest row per key"
computed on every read) becomes:
- ``calpads_history_log``: every row of it, in the same order (``line`` = its old id), the fields as the
  layout's values joined by "^" (blank = None: the canonical form already treats None and "" alike);
- ``calpads_history_current``: the latest row per (record type, LEA, year, operational key) that is not a
  D, with its updatable hash (its first 128 bits), pointing at its log row; the record type, LEA and year as
  the id of their ``calpads_history_scopes`` row.
Why: docs/adr/0003-history-schema.md. Nothing is dropped before it is copied, in one transaction.
A value holding a caret (no published record can hold one) stops the upgrade, naming the record type.
Downgrade: restore the database backup taken before the upgrade (the old table's per-row hashes and key
JSON are not kept).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

# ruff: noqa: S608  (SQL built from table and layout column names only, never user input)
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from calpads.layouts import load_layout

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KeyText = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")   # byte-wise key comparison
RecordHash = sa.String(32).with_variant(postgresql.BYTEA(), "postgresql")   # 16 bytes / 32 hex digits
OLD = "calpads_history_records"
STATE_COLUMNS = ("local_record_id", "local_student_id", "school_of_attendance", "program_code")


def upgrade() -> None:
    op.create_table(
        "calpads_history_log",
        sa.Column("run_pk", BigId, primary_key=True),   # no foreign keys: calpads.history.schema.NO_FOREIGN_KEYS
        sa.Column("line", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("op_key", KeyText, nullable=False),
        sa.Column("transaction_type", sa.String(1)),
        sa.Column("local_student_id", KeyText),
        sa.Column("ssid", KeyText),
        sa.Column("fields", sa.Text, nullable=False),
    )
    op.create_table(
        "calpads_history_scopes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_type", sa.String(8), nullable=False),
        sa.Column("reporting_lea", sa.String(7), nullable=False),
        sa.Column("academic_year", sa.String(9), nullable=False),
        sa.UniqueConstraint("record_type", "reporting_lea", "academic_year", name="uq_calpads_history_scopes"),
    )
    op.create_table(
        "calpads_history_current",
        sa.Column("scope_id", sa.Integer, primary_key=True),
        sa.Column("op_key", KeyText, primary_key=True),
        sa.Column("record_hash", RecordHash, nullable=False),
        sa.Column("run_pk", BigId, nullable=False),
        sa.Column("line", sa.BigInteger, nullable=False),
        *(sa.Column(c, sa.Text) for c in STATE_COLUMNS),
        sqlite_with_rowid=False,     # stored in key order: reading one scope is a sequential scan
    )
    conn = op.get_bind()
    pg = conn.dialect.name == "postgresql"
    carets = conn.execute(sa.text(f"SELECT DISTINCT record_type FROM {OLD} WHERE fields LIKE '%^%'")).scalars().all()
    if carets:
        raise RuntimeError(f"saved {', '.join(carets)} records hold a caret (^) in a field: the history cannot be "
                           "converted (no published record can hold one; restore the store from its backup)")

    def value(column: str) -> str:
        # The row's JSON is aliased j: parsed once per row on PostgreSQL (jsonb), json_extract on SQLite.
        return f"(j ->> '{column}')" if pg else f"json_extract(j, '$.{column}')"

    source = f"(SELECT *, fields{'::jsonb' if pg else ''} AS j FROM {OLD})"
    for record_type in conn.execute(sa.text(f"SELECT DISTINCT record_type FROM {OLD}")).scalars().all():
        columns = load_layout(record_type).columns   # layout column names only, never user input
        parts = [f"coalesce({value(c)}, '')" for c in columns]
        joined = f"concat_ws('^', {', '.join(parts)})" if pg else " || '^' || ".join(parts)
        conn.execute(sa.text(
            "INSERT INTO calpads_history_log (run_pk, line, op_key, transaction_type, local_student_id, ssid, fields) "
            f"SELECT run_pk, id, op_key, transaction_type, local_student_id, ssid, {joined} "
            f"FROM {source} r WHERE record_type = :rt"), {"rt": record_type})
    state = ", ".join(f"nullif({value(c)}, '')" for c in STATE_COLUMNS)
    conn.execute(sa.text(
        "INSERT INTO calpads_history_scopes (record_type, reporting_lea, academic_year) "
        f"SELECT DISTINCT record_type, reporting_lea, academic_year FROM {OLD}"))
    # The stored sha256 hex's first 128 bits: 16 bytes on PostgreSQL, 32 hex digits on SQLite.
    hashed = "decode(left(r.updatable_hash, 32), 'hex')" if pg else "substr(r.updatable_hash, 1, 32)"
    conn.execute(sa.text(
        "INSERT INTO calpads_history_current (scope_id, op_key, record_hash, run_pk, line, "
        f"{', '.join(STATE_COLUMNS)}) "
        f"SELECT s.id, r.op_key, {hashed}, r.run_pk, r.id, {state} "
        f"FROM {source} r JOIN (SELECT max(id) AS id FROM {OLD} "
        "GROUP BY record_type, reporting_lea, academic_year, op_key) latest ON latest.id = r.id "
        "JOIN calpads_history_scopes s ON s.record_type = r.record_type AND s.reporting_lea = r.reporting_lea "
        "AND s.academic_year = r.academic_year "
        "WHERE r.transaction_type IS NULL OR r.transaction_type <> 'D'"))
    old_rows = conn.execute(sa.text(f"SELECT count(*) FROM {OLD}")).scalar()
    new_rows = conn.execute(sa.text("SELECT count(*) FROM calpads_history_log")).scalar()
    if old_rows != new_rows:
        raise RuntimeError(f"history conversion copied {new_rows} of {old_rows} saved records: nothing changed")
    op.drop_table(OLD)


def downgrade() -> None:
    raise NotImplementedError("revision 0003 is not reversible in place: restore the calpads_store backup taken "
                              "before the upgrade")
