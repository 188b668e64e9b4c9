"""Submission leases: one run at a time between its diff and its save, per record type, LEA and year.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calpads_history_leases",
        sa.Column("record_type", sa.String(8), primary_key=True),
        sa.Column("reporting_lea", sa.String(7), primary_key=True),
        sa.Column("academic_year", sa.String(9), primary_key=True),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("base_run_pk", sa.BigInteger, nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("calpads_history_leases")
