"""One saved submission per record type, LEA and academic year at a time: two runs that compare
against the same history never both save it (SQLite and PostgreSQL stores).

- Two real processes run the whole pipeline with save_history at once, released together before the
  diff and again before the publish: one run saves; the other stops at its diff, publishing nothing,
  and says which run holds the history (the lease).
- The save's own check, when the lease no longer protects (the first run failed and released it, or
  its lease expired): the run that compared against an older history is refused at its save.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.failures import HistoryChanged, SubmissionInProgress
from calpads.history.store import LEASE_HOURS, HistoryStore
from tests.integration.reliability import LEA, YEAR, assert_no_stray_files, context, make_sis, run_all

ROOT = Path(__file__).resolve().parents[2]
STUDENTS = 40

RUNNER = r"""
import json, os, sys, time
from pathlib import Path
import sqlalchemy as sa
from calpads import pipeline
from tests.integration.reliability import context

tmp, run_id, sis_url, store_url, barrier = sys.argv[1:6]
ctx = context(Path(tmp), run_id, Path(tmp) / "pub", save_history=True)
sis, store = sa.create_engine(sis_url), sa.create_engine(store_url)

def wait(name):
    Path(f"{barrier}.{name}.{os.getpid()}").touch()
    while not Path(f"{barrier}.{name}").exists():
        time.sleep(0.01)

pipeline.extract(ctx, sis)
pipeline.gate(ctx, run_date=ctx.scope.today, error_ceiling=1.0)
stage = "diff"
try:
    wait("diff")
    pipeline.diff(ctx, store, max_delete_share=1.0)
    stage = "publish"
    wait("publish")
    pipeline.publish(ctx)
    stage = "save"
    saved = pipeline.save_history(ctx, store)["saved"]
    print(json.dumps({"run_id": run_id, "saved": saved}))
except Exception as exc:
    print(json.dumps({"run_id": run_id, "failed_at": stage, "error": type(exc).__name__, "message": str(exc)}))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("pg_database")


def _release(barrier: Path, name: str, procs: list[subprocess.Popen]) -> None:
    """Let every process past the barrier once each one is waiting there or has ended."""
    deadline = time.monotonic() + 300
    while True:
        waiting = {int(p.name.rsplit(".", 1)[1]) for p in barrier.parent.glob(f"{barrier.name}.{name}.*")}
        if all(p.pid in waiting or p.poll() is not None for p in procs):
            break
        assert time.monotonic() < deadline, f"the processes never reached {name}"
        time.sleep(0.02)
    Path(f"{barrier}.{name}").touch()


def test_two_saving_runs_at_once_leave_exactly_one_snapshot(tmp_path, store_url):
    sis_url = f"sqlite:///{tmp_path}/sis.db"
    make_sis(sa.create_engine(sis_url), students=STUDENTS)
    HistoryStore(sa.create_engine(store_url)).migrate()
    run_ids = ["manual__2026-04-01T09:00:00+00:00", "manual__2026-04-01T09:00:02+00:00"]
    barrier = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path), r, sis_url, store_url, str(barrier)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in run_ids]
    try:
        _release(barrier, "diff", procs)       # both compare with the (empty) history at once
        _release(barrier, "publish", procs)    # whoever got through publishes and saves
        results = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    saved = [r for r in results if "saved" in r]
    refused = [r for r in results if "failed_at" in r]
    assert len(saved) == 1 and saved[0]["saved"] == STUDENTS, results
    # The other run stopped at its diff (before publishing anything), naming the run that holds the history.
    assert len(refused) == 1 and refused[0]["failed_at"] == "diff", results
    assert refused[0]["error"] == "SubmissionInProgress" and saved[0]["run_id"] in refused[0]["message"], results

    store = HistoryStore(sa.create_engine(store_url))
    runs = store.runs("SPRG")
    assert runs["run_id"].tolist() == [saved[0]["run_id"]] and runs["record_count"].tolist() == [STUDENTS]
    last = store.last_submitted("SPRG", LEA, YEAR)
    assert len(last) == STUDENTS and last["hist_op_key"].is_unique
    loser = Path(str(context(tmp_path, refused[0]["run_id"], tmp_path / "pub").run_folder))
    assert not list(loser.glob("*.txt")) and not (loser / "manifest.json").exists()
    assert_no_stray_files(tmp_path / "pub")
    store.engine.dispose()


def test_a_run_that_compared_against_an_older_history_is_refused_at_its_save(tmp_path, store_engine):
    """Run A compares (empty history), then fails at publish and releases its lease; run B compares
    against the same history, publishes and saves. A's cleared publish then succeeds, but its save is
    refused: its files would re-add what B already submitted. One snapshot, B's."""
    sis = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"), students=STUDENTS)
    pub = tmp_path / "pub"
    a = context(tmp_path, "manual__a", pub, save_history=True)
    pipeline.extract(a, sis)
    pipeline.gate(a, run_date=a.scope.today, error_ceiling=1.0)
    pipeline.diff(a, store_engine)
    # A's run failed at publish: its run_outcome task gives up the lease.
    assert pipeline.release_submission(a, store_engine) is True

    b = context(tmp_path, "manual__b", pub, save_history=True)
    assert run_all(b, sis, store_engine)["save"] == {"saved": STUDENTS}

    pipeline.publish(a)
    with pytest.raises(HistoryChanged, match="run manual__b was saved"):
        pipeline.save_history(a, store_engine)
    runs = HistoryStore(store_engine).runs("SPRG")
    assert runs["run_id"].tolist() == ["manual__b"]
    last = HistoryStore(store_engine).last_submitted("SPRG", LEA, YEAR)
    assert len(last) == STUDENTS and set(last["hist_run_id"]) == {"manual__b"}
    # A new run compares against B's save: nothing changed, nothing to send, and it saves.
    c = context(tmp_path, "manual__c", pub, save_history=True)
    out = run_all(c, sis, store_engine)
    assert out["diff"]["new"] == 0 and out["publish"]["records"] == 0 and out["save"] == {"saved": 0}
    assert HistoryStore(store_engine).runs("SPRG")["run_id"].tolist() == ["manual__b", "manual__c"]


def test_the_lease_blocks_another_run_until_saved_released_or_expired(tmp_path, store_engine):
    store = HistoryStore(store_engine)
    store.migrate()
    now = datetime(2026, 4, 1, 9, tzinfo=UTC)
    store.claim_submission("SPRG", LEA, YEAR, "run_a", 0, now=now)
    store.claim_submission("SPRG", LEA, YEAR, "run_a", 0, now=now)      # its own retry: fine
    store.claim_submission("SPRG", LEA, "2024-2025", "run_x", 0, now=now)   # another year: another lease
    with pytest.raises(SubmissionInProgress, match="run run_a"):
        store.claim_submission("SPRG", LEA, YEAR, "run_b", 0, now=now + timedelta(hours=1))
    # A lease older than LEASE_HOURS (its run died without releasing it) is taken over.
    store.claim_submission("SPRG", LEA, YEAR, "run_b", 0, now=now + timedelta(hours=LEASE_HOURS, minutes=1))
    assert store.release_submission("SPRG", LEA, YEAR, "run_a") is False
    assert store.release_submission("SPRG", LEA, YEAR, "run_b") is True
    store.claim_submission("SPRG", LEA, YEAR, "run_c", 0, now=now)
