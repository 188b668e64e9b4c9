"""Shared fixtures and builders of the history tests (no tests here).

``history_engine`` is parametrized: a SQLite file under tmp_path, and a fresh PostgreSQL
database ``calpads_hist_<random>`` (dropped afterwards; skipped when the server is
unreachable, a failure when CI is set).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.history.diff import DiffResult, ScopeFilter, compute_transactions
from calpads.history.store import HistoryStore
from calpads.layouts import load_layout

LAYOUT = load_layout("SPRG")
LEA, OTHER_LEA = "1234567", "7777777"
YEAR, LAST_YEAR = "2025-2026", "2024-2025"
S1, S2 = "7654321", "7654322"


# Fixture functions are named *_fixture (name= gives the fixture name) so that test modules can
# import them without their parameters shadowing an import (ruff F811).
@pytest.fixture(name="pg_history_url")
def pg_history_url_fixture(pg_database: str) -> str:
    """A fresh PostgreSQL database (tests/conftest.py's pg_database)."""
    return pg_database


@pytest.fixture(name="history_engine", params=["sqlite", "postgresql"])
def history_engine_fixture(request, tmp_path) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("pg_history_url")
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(name="store")
def store_fixture(history_engine) -> HistoryStore:
    s = HistoryStore(history_engine)
    s.migrate()
    return s


def rec(local_record_id: str, **fields: Any) -> dict[str, Any]:
    """One SPRG record: Ann (1001) in program 101 at S1 from 2025-09-02, unless overridden."""
    base = {c: None for c in LAYOUT.columns}
    base.update(record_type="SPRG", local_record_id=local_record_id, reporting_lea=LEA, school_of_attendance=S1,
                academic_year_id=YEAR, ssid="1000000001", local_student_id="1001", legal_first_name="Ann",
                legal_last_name="Lee", birth_date="20150304", gender_code="F", program_code="101",
                membership_code="3", membership_start_date="20250902")
    unknown = set(fields) - set(base)
    assert not unknown, unknown
    base.update(fields)
    return base


def bob(local_record_id: str, **fields: Any) -> dict[str, Any]:
    return rec(local_record_id, **{"ssid": "1000000002", "local_student_id": "1002", "legal_first_name": "Bob",
                                   "legal_last_name": "Diaz", "birth_date": "20140506", "gender_code": "M", **fields})


def frame(*records: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(records), columns=LAYOUT.columns)


def run(store: HistoryStore, records: pd.DataFrame, run_id: str, *, mode: str = "submission",
        scope: ScopeFilter | None = None, lea: str = LEA, year: str = YEAR, save: bool = True) -> DiffResult:
    """One run as the pipeline does it: diff against the history (excluding this run), then save."""
    last = store.last_submitted("SPRG", lea, year, exclude_run_id=run_id)
    result = compute_transactions(records, LAYOUT, last, mode, scope or ScopeFilter(),
                                  read_fields=functools.partial(store.fields_of, LAYOUT))
    if save:
        store.save_run(result.records, LAYOUT, lea=lea, academic_year=year, run_id=run_id, params={"mode": mode})
    return result


def sent(result: DiffResult, *columns: str) -> list[tuple]:
    """(transaction type or "", local record id, *columns) per output record, sorted."""
    df = result.records
    out = []
    for row in df.to_dict(orient="records"):
        tt = row["transaction_type"]
        out.append((tt or "", row["local_record_id"], *[_blank(row[c]) for c in columns]))
    return sorted(out)


def _blank(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else v
