"""Alembic environment for the history tables.

Normally run through ``HistoryStore.migrate()``, which passes an open connection in
``config.attributes["connection"]``; with only ``sqlalchemy.url`` set (``alembic`` command
line, e.g. ``revision --autogenerate``) it connects itself. The version table is the
project's own (``calpads_alembic_version``), so the store can share a database with others.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from calpads.history.schema import VERSION_TABLE, metadata

# Any constant: PostgreSQL advisory lock key that serialises concurrent migrations.
PG_MIGRATION_LOCK = 7_361_522_001


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two tasks migrating a fresh database at once: the second waits, then finds head.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      version_table=VERSION_TABLE, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
