"""cProfile of each SPRG / STAS pipeline stage (py-spy and pyinstrument are not in the venv).

    .venv/bin/python bench/profile_sprg.py --students 50000 [--sis sqlite:////tmp/sis.db] [--top 25]
                                           [--stages extract,gate,diff,publish,save_history,diff2]

Without --sis a program-dense SQLite district is generated (as bench/run_all.py does). Prints, per
stage, the wall time and the functions with the most cumulative and own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=50_000)
    ap.add_argument("--sis", help="an existing SIS database URL (skips generation)")
    ap.add_argument("--record-type", default="SPRG")
    ap.add_argument("--store", help="history store URL (default: SQLite in the work folder)")
    ap.add_argument("--stages", default="extract,gate,diff,publish,save_history,diff2")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    logging.disable(logging.INFO)

    from calpads import pipeline
    from calpads.run_scope import RunScope

    work = Path(tempfile.mkdtemp(prefix="calpads-prof-"))
    try:
        if args.sis:
            sis = sa.create_engine(args.sis)
        else:
            from calpads.demo.generator import generate_district

            sis = sa.create_engine(f"sqlite:///{work}/sis.db")
            generate_district(sis, students=args.students, seed=7, dirty=0.01, log=lambda m: None,
                              attendance=args.record_type == "STAS", program_rate_scale=25)
        store = sa.create_engine(args.store or f"sqlite:///{work}/store.db")
        rt = args.record_type
        today = date(2026, 5, 1) if rt == "SPRG" else date(2026, 6, 20)
        scope = RunScope.from_params(rt, {"academic_year": "2025-2026", "save_history": True}, today=today)
        (work / "pub").mkdir(parents=True, exist_ok=True)   # the publish root exists before a run
        ctx = pipeline.RunContext(rt, f"calpads_{rt.lower()}", "prof__1", scope, work / "r1", work / "pub")
        ctx2 = pipeline.RunContext(rt, f"calpads_{rt.lower()}", "prof__2", scope, work / "r2", work / "pub")

        def diff2() -> object:
            pipeline.prepare_work_dir(ctx2)
            for name in (pipeline.PUBLISHABLE, pipeline.HELD_BACK, pipeline.STATE):
                shutil.copyfile(ctx.path(name), ctx2.path(name))
            return pipeline.diff(ctx2, store)

        stages = {
            "extract": lambda: pipeline.extract(ctx, sis),
            "gate": lambda: pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5),
            "diff": lambda: pipeline.diff(ctx, store),
            "publish": lambda: pipeline.publish(ctx),
            "save_history": lambda: pipeline.save_history(ctx, store),
            "diff2": diff2,
        }
        from calpads.quality.gate import gx_context, gx_suite

        gx_suite(rt) and gx_context()      # GX's import and context: once per process, not profiled
        for name in args.stages.split(","):
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.runcall(stages[name])
            print(f"\n===== {rt} {name}: {time.perf_counter() - t0:.2f} s (under cProfile) =====")
            for key in ("cumulative", "tottime"):
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(args.top)
                lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
                start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
                print(f"--- by {key}")
                print("\n".join(lines[start:start + args.top + 1]))
            sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
