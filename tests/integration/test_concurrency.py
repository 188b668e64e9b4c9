"""Concurrent runs: nothing is lost or doubled.

- The store's save lock, with two real processes saving at once on PostgreSQL and on SQLite: the same
  run saved twice at once (a retry racing a zombie attempt) saves once; two runs saved at once never
  interleave their rows (ids stay in save order, which "latest row per key" relies on).
- Two record types (two DAGs) migrating and saving into one fresh PostgreSQL store at once.
- Two runs of the same DAG and scope (a manual trigger during the nightly run) at once, as two
  processes: each publishes its own complete folder; and the factory allows one active run per DAG.

The child processes stretch the save with a test hook (the rows are inserted in two halves with a
pause between), so that without the lock the two saves would overlap for certain.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads.history.store import HistoryStore
from tests.integration.reliability import LEA, YEAR, assert_no_stray_files, make_sis

SAVER = r"""
import json, pathlib, sys, time
import numpy as np, pandas as pd, pyarrow as pa, sqlalchemy as sa
from calpads.history import store as store_mod
from calpads.layouts import load_layout

url, record_type, run_id, value, barrier, n = sys.argv[1:7]
n = int(n)
layout = load_layout(record_type)
keys = set(layout.operational_keys)
i = np.arange(n).astype(str).astype(object)
frame = pd.DataFrame({c: (("k" + i) if c in keys else np.full(n, value, dtype=object)) for c in layout.columns})
frame["record_type"] = record_type
frame["transaction_type"] = None
for col, v in (("reporting_lea", "LEA"), ("academic_year_id", "YEAR")):
    if col in frame:
        frame[col] = v

real_write = store_mod.HistoryStore._write
def slow_write(conn, table, columns, batches, **kw):   # test hook: two halves with a pause, inside the transaction
    batches = list(batches)
    rows = pa.concat_tables(batches) if batches else pa.table({c: pa.array([], pa.string()) for c in columns})
    half = rows.num_rows // 2
    real_write(conn, table, columns, [rows.slice(0, half)], **kw)
    time.sleep(1.5)
    real_write(conn, table, columns, [rows.slice(half)], **kw)
store_mod.HistoryStore._write = staticmethod(slow_write)

engine = sa.create_engine(url)
store = store_mod.HistoryStore(engine)
store.migrate()
import os
pathlib.Path(f"{barrier}.{os.getpid()}").touch()
while not pathlib.Path(barrier).exists():
    time.sleep(0.01)
try:
    saved = store.save_run(frame, layout, lea="LEA", academic_year="YEAR", run_id=run_id, params={})
    print(json.dumps({"saved": saved}))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)[:300]}))
""".replace('"LEA"', repr(LEA)).replace('"YEAR"', repr(YEAR))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("pg_database")


def save_at_once(url: str, tmp_path: Path, jobs: list[tuple[str, str, str]], n: int = 400) -> list[dict]:
    """Start one process per (record type, run id, value), release them together, return their results."""
    if url.startswith("sqlite"):   # PostgreSQL: the processes also migrate the fresh database at once
        HistoryStore(sa.create_engine(url)).migrate()
    barrier = tmp_path / f"go{time.monotonic_ns()}"
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, url, rt, run_id, value, str(barrier), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rt, run_id, value in jobs]
    try:
        deadline = time.monotonic() + 300
        while len(list(tmp_path.glob(barrier.name + ".*"))) < len(jobs):   # every process is ready
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                [p.stderr.read()[-2000:] for p in procs if p.poll() is not None]
            time.sleep(0.05)
        barrier.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:   # a failed test leaves no process waiting for the barrier
            if p.poll() is None:
                p.kill()
                p.wait()


def record_ids(url: str) -> dict[str, list[int]]:
    eng = sa.create_engine(url)
    with eng.connect() as c:
        rows = c.exec_driver_sql("SELECT r.run_id, l.line FROM calpads_history_log l JOIN calpads_history_runs r "
                                 "ON r.id = l.run_pk ORDER BY l.run_pk, l.line").all()
    eng.dispose()
    out: dict[str, list[int]] = {}
    for run_id, rid in rows:
        out.setdefault(run_id, []).append(rid)
    return out


def test_the_same_run_saved_by_two_processes_at_once_is_saved_once(store_url, tmp_path):
    results = save_at_once(store_url, tmp_path, [("SPRG", "manual__dup", "A"), ("SPRG", "manual__dup", "A")])
    assert sorted(r.get("saved", -1) for r in results) == [0, 400], results
    runs = HistoryStore(sa.create_engine(store_url)).runs("SPRG")
    assert runs["run_id"].tolist() == ["manual__dup"] and runs["record_count"].tolist() == [400]
    assert {k: len(v) for k, v in record_ids(store_url).items()} == {"manual__dup": 400}


def test_two_runs_saved_at_once_do_not_interleave(store_url, tmp_path):
    results = save_at_once(store_url, tmp_path, [("SPRG", "scheduled__night", "N"), ("SPRG", "manual__day", "D")])
    assert [r.get("saved") for r in results] == [400, 400], results
    ids = record_ids(store_url)
    # Each run's records once, in file order (lines 1..400 under its own run row).
    assert sorted(ids) == ["manual__day", "scheduled__night"] and all(v == list(range(1, 401)) for v in ids.values())
    # "Latest per key" is the run saved last, for every key.
    runs = HistoryStore(sa.create_engine(store_url)).runs("SPRG")["run_id"].tolist()
    last = HistoryStore(sa.create_engine(store_url)).last_submitted("SPRG", LEA, YEAR)
    assert len(last) == 400 and set(last["hist_run_id"]) == {runs[-1]}


def test_two_record_types_share_a_fresh_postgres_store(pg_database, tmp_path):
    results = save_at_once(pg_database, tmp_path, [("SPRG", "manual__sprg", "S"), ("SENR", "manual__senr", "E")])
    assert [r.get("saved") for r in results] == [400, 400], results
    store = HistoryStore(sa.create_engine(pg_database))
    assert store.current_revision() == store.head_revision()
    for rt, run_id in (("SPRG", "manual__sprg"), ("SENR", "manual__senr")):
        assert store.runs(rt)["run_id"].tolist() == [run_id]
        last = store.last_submitted(rt, LEA, YEAR)
        assert len(last) == 400 and set(last["hist_run_id"]) == {run_id}
    store.engine.dispose()


RUNNER = r"""
import sys
from pathlib import Path
import sqlalchemy as sa
from tests.integration.reliability import context, run_all
tmp, run_id, sis_url, store_url = sys.argv[1:5]
ctx = context(Path(tmp), run_id, Path(tmp) / "pub", save_history=False)
print(run_all(ctx, sa.create_engine(sis_url), sa.create_engine(store_url))["publish"]["folder"])
"""


def test_a_manual_run_during_the_nightly_run_publishes_its_own_folder(tmp_path):
    root = Path(__file__).resolve().parents[2]
    sis_url, store_url = f"sqlite:///{tmp_path}/sis.db", f"sqlite:///{tmp_path}/store.db"
    make_sis(sa.create_engine(sis_url), students=50)
    run_ids = ["scheduled__2026-04-01T09:00:00+00:00", "manual__2026-04-01T09:00:05+00:00"]
    procs = [subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path), r, sis_url, store_url], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in run_ids]
    folders = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        folders.append(Path(out.strip().splitlines()[-1]))
    assert folders[0] != folders[1] and folders[0].parent == folders[1].parent
    assert_no_stray_files(tmp_path / "pub")
    for folder, run_id in zip(folders, run_ids, strict=True):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["run_id"] == run_id
        for f in manifest["files"]:
            assert hashlib.sha256((folder / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    # The same SIS, the same (empty) history: the two runs' files are the same bytes, each complete.
    assert [p.read_bytes() for p in sorted(folders[0].glob("*.txt"))] == \
        [p.read_bytes() for p in sorted(folders[1].glob("*.txt"))]


def test_the_factory_allows_one_active_run_per_dag():
    from calpads_airflow.factories.file_dag import build_calpads_dag

    assert build_calpads_dag("SPRG").max_active_runs == 1
