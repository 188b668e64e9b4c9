"""Benchmark the SPRG chain stage by stage on a generated district.

    python bench/bench_sprg.py --students 50000 [--backend sqlite|postgresql] [--keep]

Prints wall time, records/s and peak RSS (sampled) per stage, beside the bare
baseline (the same program rows SELECTed and written to a caret file), and
appends the rows to bench/results/sprg.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psutil
import sqlalchemy as sa

RESULTS = Path(__file__).resolve().parent / "results"


class PeakRSS:
    def __init__(self):
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


@contextmanager
def stage(rows: list, name: str, students: int, backend: str):
    info: dict = {}
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        yield info
    seconds = time.perf_counter() - t0
    n = info.get("records", 0)
    rows.append({"stage": name, "students": students, "backend": backend, "seconds": round(seconds, 3),
                 "records": n, "records_per_s": round(n / seconds) if seconds and n else "",
                 "peak_rss_mb": round(rss.peak / 2**20)})
    print(f"{name:<28} {seconds:8.2f} s  {n:>9} records  peak RSS {rss.peak / 2**20:7.0f} MB", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=50000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from calpads import pipeline
    from calpads.demo.generator import generate_district
    from calpads.extracts.common import program_set
    from calpads.layouts import load_layout
    from calpads.run_scope import RunScope

    work = args.workdir or Path(tempfile.mkdtemp(prefix="calpads-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    pg_name = None
    if args.backend == "sqlite":
        sis_url = f"sqlite:///{work}/sis_{args.students}.db"
    else:
        pg_name = f"calpads_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{pg_name}"')
        sis_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{pg_name}"
    sis = sa.create_engine(sis_url)
    store = sa.create_engine(f"sqlite:///{work}/store_{uuid.uuid4().hex[:6]}.db")
    try:
        with stage(rows, "generate district", args.students, args.backend) as info:
            summary = generate_district(sis, students=args.students, seed=7, dirty=0.01, academic_year="2025-2026")
            info["records"] = args.students
        print(f"  ({summary})" if len(str(summary)) < 400 else "", file=sys.stderr)

        scope = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "save_history": True},
                                     today=date(2026, 5, 1))
        (work / "pub").mkdir(parents=True, exist_ok=True)   # the publish root exists before a run
        ctx = pipeline.RunContext("SPRG", "calpads_sprg", "bench__run1", scope, work / "run1", work / "pub")

        with stage(rows, "baseline: SELECT -> caret", args.students, args.backend) as info:
            info["records"] = bare_baseline(sis, program_set(load_layout("SPRG"), scope), work / "bare.txt")
        total0 = time.perf_counter()
        with stage(rows, "extract (pull + build)", args.students, args.backend) as info:
            info["records"] = pipeline.extract(ctx, sis)["records_extracted"]
        with stage(rows, "gate", args.students, args.backend) as info:
            info["records"] = pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)["records_checked"]
        with stage(rows, "diff (first submission)", args.students, args.backend) as info:
            info["records"] = pipeline.diff(ctx, store)["records_out"]
        with stage(rows, "publish", args.students, args.backend) as info:
            info["records"] = pipeline.publish(ctx)["records"]
        with stage(rows, "save history", args.students, args.backend) as info:
            info["records"] = pipeline.save_history(ctx, store)["saved"]
        total = time.perf_counter() - total0
        rows.append({"stage": "SPRG end to end", "students": args.students, "backend": args.backend,
                     "seconds": round(total, 3), "records": rows[-1]["records"], "records_per_s": "",
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in rows[2:])})
        print(f"{'SPRG end to end':<28} {total:8.2f} s  ({total / rows[1]['seconds']:.1f}x the bare baseline)")
    finally:
        sis.dispose()
        if pg_name:
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sprg.csv"
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)
    print(f"results appended to {out}")
    return 0


def bare_baseline(sis: sa.Engine, programs: list[str], path: Path) -> int:
    """What a bare SELECT of the program rows into a caret file costs (no selection logic, no gate)."""
    q = sa.text(
        "SELECT s.id, p.id, s.student_number, s.state_studentnumber, s.first_name, s.last_name, s.dob, s.gender, "
        "p.programcode, p.programmembershipcode, p.programstartdate, p.programenddate, p.partnershipacademyid, "
        "p.migrantstudentid, p.prmarydisabilitycode, p.distspedaccountability, p.dwellingtype, "
        "p.unaccompaniedyouth, p.runawayyouth, p.schoolid FROM s_ca_stu_calpadsprograms_c p "
        "JOIN students s ON s.dcid = p.studentsdcid WHERE p.programcode IN :codes"
    ).bindparams(sa.bindparam("codes", expanding=True))
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with sis.connect() as c:
        result = c.execute(q, {"codes": programs})
        cols = list(result.keys())
        data = [tuple("" if v is None else str(v) for v in row) for row in result]
    table = pa.table({f"c{i}": [r[i] for r in data] for i in range(len(cols))})
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, delimiter="^", quoting_style="none"))
    return len(data)


if __name__ == "__main__":
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    raise SystemExit(main())
