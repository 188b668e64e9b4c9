"""A publish killed (SIGKILL) in the middle of copying a file, then retried with save_history:
no partial file is left, the files equal those of an undisturbed publish, the history counts once.

The kill is made deterministic with a test hook in the child process: the copy to the publish
folder writes its first 4 MiB chunk (the real ``target.put_file`` loop), then stalls; the parent
waits for that and SIGKILLs the child. The file is larger than one chunk, so the temporary file
left behind is truly partial.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from calpads import pipeline
from calpads.history.store import HistoryStore
from calpads.layouts import load_layout
from calpads.run_scope import RunScope
from tests.conftest import require_postgres  # noqa: F401

LAYOUT = load_layout("SPRG")
LEA, YEAR, RUN_ID = "1234567", "2025-2026", "manual__killed"
N = 60_000                      # ~8 MB full file: two 4 MiB copy chunks at least
CHUNK = 1 << 22                 # target.put_file's chunk

CHILD = r"""
import pathlib, sys, time
from datetime import date
from calpads import pipeline
from calpads.run_scope import RunScope

work, pub, marker, run_folder = map(pathlib.Path, sys.argv[1:5])
real_open = pathlib.Path.open

class Stalling:
    # A destination file that writes one chunk for real, says so, then hangs (until killed).
    def __init__(self, fh):
        self.fh = fh
    def write(self, data):
        n = self.fh.write(data)
        self.fh.flush()
        marker.write_text(self.fh.name)
        time.sleep(600)
        return n
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.fh.close()

def hooked_open(self, mode="r", *args, **kwargs):
    fh = real_open(self, mode, *args, **kwargs)
    if "w" in mode and self.name.endswith(".partial") and self.parent == run_folder:
        return Stalling(fh)
    return fh

pathlib.Path.open = hooked_open
scope = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "save_history": True}, today=date(2026, 5, 1))
ctx = pipeline.RunContext("SPRG", "calpads_sprg", sys.argv[5], scope, work, pub)
pipeline.publish(ctx)
"""


# store_engine: tests/conftest.py (SQLite and PostgreSQL)


def diffed_records(n: int) -> pd.DataFrame:
    """n records as the diff stage leaves them (file order), every 50th a D."""
    i = np.arange(n)
    text = lambda a: a.astype(str).astype(object)  # noqa: E731
    cols = {c: np.full(n, None, dtype=object) for c in LAYOUT.columns}
    cols.update({
        "record_type": np.full(n, "SPRG", dtype=object),
        "transaction_type": np.where(i % 50 == 0, "D", None).astype(object),
        "local_record_id": text(i) + ".1",
        "reporting_lea": np.full(n, LEA, dtype=object),
        "school_of_attendance": np.full(n, "7654321", dtype=object),
        "academic_year_id": np.full(n, YEAR, dtype=object),
        "ssid": text(1_000_000_000 + i),
        "local_student_id": text(100_000 + i),
        "legal_first_name": "First" + text(i),
        "legal_last_name": "Last" + text(i),
        "birth_date": np.full(n, "20150314", dtype=object),
        "gender_code": np.full(n, "F", dtype=object),
        "program_code": np.full(n, "101", dtype=object),
        "membership_code": np.full(n, "3", dtype=object),
        "membership_start_date": np.full(n, "20250902", dtype=object),
    })
    return pd.DataFrame(cols)[LAYOUT.columns]


def context(work: Path, pub: Path) -> pipeline.RunContext:
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, "save_history": True}, today=date(2026, 5, 1))
    ctx = pipeline.RunContext("SPRG", "calpads_sprg", RUN_ID, scope, work, pub)
    pipeline.prepare_work_dir(ctx)
    pipeline._to_parquet(diffed_records(N), ctx.path(pipeline.DIFFED))
    ctx.update_state(lea=LEA, diff={"new": N - N // 50, "changed": 0, "unchanged": 0, "deleted": N // 50})
    return ctx


def test_a_publish_killed_while_copying_then_retried_leaves_no_partial_and_saves_once(tmp_path, store_engine):
    ctx = context(tmp_path / "work", tmp_path / "pub")
    folder = Path(str(ctx.run_folder))
    marker = tmp_path / "copying"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ctx.work_dir), str(ctx.publish_root), str(marker),
                              str(folder), RUN_ID], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert child.poll() is None, f"publish ended before the kill: {child.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the copy never started"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(60)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    # What the kill left: one partial temporary file (the first chunk of the full file), nothing else.
    full_name = f"SPRG_{LEA}_{YEAR}.txt"
    left = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert left == [f".{full_name}.partial"]
    assert (folder / left[0]).stat().st_size == CHUNK < (ctx.work_dir / "files" / full_name).stat().st_size

    # Airflow retries publish, then save_history runs; a later clear of both repeats them.
    for _ in range(2):
        pipeline.publish(ctx)
        assert pipeline.save_history(ctx, store_engine)["saved"] in (N, 0)
    assert not [p.name for p in folder.rglob("*.partial")]

    # The same files as an undisturbed publish of the same records.
    clean = context(tmp_path / "work_clean", tmp_path / "pub_clean")
    pipeline.publish(clean)
    clean_folder = Path(str(clean.run_folder))
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in clean_folder.iterdir()) == [
        full_name, f"SPRG_{LEA}_{YEAR}_AU.txt", f"SPRG_{LEA}_{YEAR}_D.txt", "manifest.json"]
    for name in names:
        assert (folder / name).read_bytes() == (clean_folder / name).read_bytes(), name

    runs = HistoryStore(store_engine).runs("SPRG")
    assert runs["run_id"].tolist() == [RUN_ID]
    assert runs[["record_count", "add_update_count", "delete_count"]].values.tolist() == [[N, N - N // 50, N // 50]]
    shutil.rmtree(tmp_path / "pub_clean")
