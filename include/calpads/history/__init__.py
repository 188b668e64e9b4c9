"""Submission history: what was sent to CALPADS, and the transaction diff against it.

- ``store.HistoryStore``: the ``calpads_store`` tables (migrated with Alembic), saving a run's
  published records and reading back the last submitted record per operational key.
- ``diff.compute_transactions``: which records a run sends (new/changed, D for deletes).
- ``cli``: ``python -m calpads.history.cli student ...`` for the coordinator.
"""
