"""Alembic migrations of the history tables (run by ``HistoryStore.migrate()``)."""
