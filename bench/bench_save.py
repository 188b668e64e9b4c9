"""Time the history's save and read for N SPRG records, one measurement per process (as an Airflow task runs
it), with the process's peak RSS (VmHWM: the whole process, generation of the records included).

    .venv/bin/python bench/bench_save.py --rows 1500000 --store postgresql+psycopg2://postgres@127.0.0.1:5432/bx
    .venv/bin/python bench/bench_save.py --rows 1500000 --store sqlite:////tmp/bx.db --what read

``--what save`` (default): the first submission, ``save_run`` of N records into an empty store, read from a
Parquet work file as ``pipeline.save_history`` reads them (written first by a child process, so that the
generation's memory is not counted).
``--what read``: ``last_submitted`` of the store saved before (keys, hashes and the scope's columns).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_diff import LEA, YEAR, make_records, peak_rss_mb  # noqa: E402

from calpads.history.store import HistoryStore  # noqa: E402
from calpads.layouts import load_layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_500_000)
    ap.add_argument("--store", required=True)
    ap.add_argument("--what", choices=("save", "read"), default="save")
    ap.add_argument("--records", default="", help="Parquet file of the records (/tmp/bench_sprg_<rows>.parquet)")
    ap.add_argument("--make", action="store_true", help=argparse.SUPPRESS)   # the child that writes --records
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    layout = load_layout("SPRG")
    path = Path(args.records or f"/tmp/bench_sprg_{args.rows}.parquet")
    if args.make:
        make_records(args.rows, layout).to_parquet(path, index=False)
        return
    if args.what == "save" and not path.exists():
        subprocess.run([sys.executable, __file__, "--make", "--rows", str(args.rows), "--records", str(path),
                        "--store", args.store], check=True)
    store = HistoryStore(sa.create_engine(args.store))
    store.migrate()
    if args.what == "save":
        records = pd.read_parquet(path)
        t0 = time.perf_counter()
        n = store.save_run(records, layout, lea=LEA, academic_year=YEAR, run_id=f"bench_{time.time_ns()}", params={})
    else:
        t0 = time.perf_counter()
        n = len(store.last_submitted("SPRG", LEA, YEAR))
    print(f"{args.what:<5} {store.engine.dialect.name:<10} {time.perf_counter() - t0:7.2f} s  {n:>9,} rows  "
          f"peak RSS {peak_rss_mb():6.0f} MB  load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
