"""Time HistoryStore.save_run and last_submitted for N SPRG records (fresh process, so peak RSS is the save's).

    .venv/bin/python bench/bench_save.py --rows 1500000 --store postgresql+psycopg2://postgres@127.0.0.1:5432/bench_x
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_diff import LEA, YEAR, make_records  # noqa: E402
from bench_sprg import PeakRSS  # noqa: E402

from calpads.history.store import HistoryStore  # noqa: E402
from calpads.layouts import load_layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_500_000)
    ap.add_argument("--store", required=True)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    layout = load_layout("SPRG")
    records = make_records(args.rows, layout)
    store = HistoryStore(sa.create_engine(args.store))
    store.migrate()
    for what, fn in (("save_run", lambda: store.save_run(records, layout, lea=LEA, academic_year=YEAR,
                                                          run_id=f"bench_{time.time_ns()}", params={})),
                     ("last_submitted", lambda: store.last_submitted("SPRG", LEA, YEAR))):
        t0 = time.perf_counter()
        with PeakRSS() as rss:
            out = fn()
        n = out if isinstance(out, int) else len(out)
        print(f"{what:<15} {time.perf_counter() - t0:7.2f} s  {n:>9,} rows  peak RSS {rss.peak / 2**20:6.0f} MB  "
              f"load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
