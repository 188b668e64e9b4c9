"""History tables: runs, submitted records, lock rows.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "calpads_history_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("record_type", sa.String(8), nullable=False),
        sa.Column("reporting_lea", sa.String(7), nullable=False),
        sa.Column("academic_year", sa.String(9), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("record_count", sa.Integer, nullable=False),
        sa.Column("add_update_count", sa.Integer, nullable=False),
        sa.Column("delete_count", sa.Integer, nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("record_type", "reporting_lea", "run_id", name="uq_calpads_history_runs_run"),
    )
    op.create_table(
        "calpads_history_records",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_pk", BigId, sa.ForeignKey("calpads_history_runs.id", name="fk_calpads_history_records_run"),
                  nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("record_type", sa.String(8), nullable=False),
        sa.Column("reporting_lea", sa.String(7), nullable=False),
        sa.Column("academic_year", sa.String(9), nullable=False),
        sa.Column("op_key", sa.Text, nullable=False),
        sa.Column("key_values", sa.Text, nullable=False),
        sa.Column("updatable_hash", sa.String(64), nullable=False),
        sa.Column("transaction_type", sa.String(1)),
        sa.Column("local_student_id", sa.Text),
        sa.Column("ssid", sa.Text),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_calpads_history_records_latest", "calpads_history_records",
                    ["record_type", "reporting_lea", "academic_year", "op_key", "id"])
    op.create_index("ix_calpads_history_records_local_id", "calpads_history_records",
                    ["record_type", "local_student_id"])
    op.create_index("ix_calpads_history_records_ssid", "calpads_history_records", ["record_type", "ssid"])
    op.create_index("ix_calpads_history_records_run", "calpads_history_records", ["run_pk"])
    op.create_table("calpads_history_locks", sa.Column("name", sa.String(64), primary_key=True))


def downgrade() -> None:
    op.drop_table("calpads_history_locks")
    op.drop_table("calpads_history_records")
    op.drop_table("calpads_history_runs")
