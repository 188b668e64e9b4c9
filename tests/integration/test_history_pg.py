"""PostgreSQL-only behaviour of the history store: the lock row, concurrent migrations, COPY in bulk."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from calpads.history import schema
from calpads.history.diff import ScopeFilter, compute_transactions
from calpads.history.store import HistoryStore
from tests.unit.test_history_support import LAYOUT, LEA, YEAR, frame, pg_history_url_fixture, rec  # noqa: F401

pytestmark = pytest.mark.postgres


@pytest.fixture(name="pg_engine")
def pg_engine_fixture(pg_history_url):
    engine = sa.create_engine(pg_history_url)
    yield engine
    engine.dispose()


def test_a_save_waits_for_the_lock_row_held_by_another_transaction(pg_engine):
    store = HistoryStore(pg_engine)
    store.migrate()
    store.save_run(frame(rec("0.1")), LAYOUT, lea=LEA, academic_year=YEAR, run_id="run0", params={})  # lock row
    done = threading.Event()
    with pg_engine.connect() as holder, holder.begin():
        holder.execute(sa.select(schema.locks).where(schema.locks.c.name == f"save:SPRG:{LEA}").with_for_update())
        worker = threading.Thread(target=lambda: (store.save_run(frame(rec("1.21", ssid="1000000009")), LAYOUT,
                                                                 lea=LEA, academic_year=YEAR, run_id="run1",
                                                                 params={}), done.set()))
        worker.start()
        time.sleep(1.5)
        assert not done.is_set(), "save_run did not wait for the lock row"
    worker.join(30)
    assert done.is_set()
    assert store.runs()["run_id"].tolist() == ["run0", "run1"]


def test_several_processes_and_threads_migrating_a_fresh_database_at_once_all_succeed(pg_history_url):
    code = "import sys, sqlalchemy as sa; from calpads.history.store import HistoryStore; " \
           "HistoryStore(sa.create_engine(sys.argv[1])).migrate()"
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_history_url], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errors: list[BaseException] = []
    engine = sa.create_engine(pg_history_url)

    def migrate() -> None:
        try:
            HistoryStore(engine).migrate()
        except BaseException as e:  # noqa: BLE001  (reported by the assertion below)
            errors.append(e)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    results = [(p.wait(60), p.stderr.read()) for p in procs]
    assert not errors, errors
    assert [rc for rc, _ in results] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert HistoryStore(engine).current_revision() == "0003"
    engine.dispose()


def test_bulk_save_and_read_back(pg_engine):
    n = 60_000
    store = HistoryStore(pg_engine)
    store.migrate()
    records = frame(*[rec(f"{i}.1", ssid=f"{2_000_000_000 + i}", local_student_id=str(10_000 + i),
                          membership_end_date="20260115" if i % 10 == 0 else None) for i in range(n)])
    assert store.save_run(records, LAYOUT, lea=LEA, academic_year=YEAR, run_id="big", params={}) == n
    last = store.last_submitted("SPRG", LEA, YEAR)
    assert len(last) == n
    # Read back, nothing changed; drop every 100th record and change every 1000th's end date.
    result = compute_transactions(records, LAYOUT, last, "submission", ScopeFilter())
    assert result.counts == {"new": 0, "changed": 0, "unchanged": n, "deleted": 0}
    changed = records[records.index % 100 != 0].copy()
    changed.loc[changed.index % 1000 == 1, "membership_end_date"] = "20260201"
    result = compute_transactions(changed, LAYOUT, last, "submission", ScopeFilter(),
                                  read_fields=functools.partial(store.fields_of, LAYOUT))
    assert sorted(result.records.loc[result.records["transaction_type"] == "D", "local_record_id"]) == sorted(
        records.loc[records.index % 100 == 0, "local_record_id"])
    assert result.counts == {"new": 0, "changed": n // 1000, "unchanged": len(changed) - n // 1000,
                             "deleted": n // 100}
