"""Run one pipeline stage in this (fresh) Python process, as an Airflow task runs it, and report its cost.

    .venv/bin/python bench/stage.py <stage> --record-type SPRG --work DIR --publish-root DIR
                                    --run-id ID --today 2026-05-01 --sis URL --store URL

<stage> is one of extract, gate, diff, publish, save_history (the DAG's tasks, ``calpads.pipeline``) or
``bare`` (the SPRG baseline: the same program rows SELECTed into a caret file, bench/bench_sprg.py) or
``stas_sql`` (the STAS baseline: the SQL aggregation of attendance alone).

Prints one JSON line on stdout: ``seconds`` (the stage call alone), ``import_seconds`` (imports, GX's context
and suites, for the gate and for the extract's staging gate: what every task pays before its work),
``peak_rss_mb`` (this process's own peak resident set since its exec: Linux's VmHWM, see ``peak_rss_mb``),
``records`` (the stage's count) and ``cpu_seconds`` (this process's CPU time in the stage call: steadier than
wall time on a shared, loaded machine, but blind to waiting on the database).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

_T_START = time.perf_counter()
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

YEAR = "2025-2026"
STAGES = ("extract", "gate", "diff", "publish", "save_history", "bare", "stas_sql")
# The count each stage's XCom dict reports.
COUNT_KEY = {"extract": "records_extracted", "gate": "records_checked", "diff": "records_out",
             "publish": "records", "save_history": "saved"}


def peak_rss_mb() -> float:
    """This process's peak resident set since its exec, in MiB: Linux's VmHWM (the high-water mark of this
    program's own address space). ``ru_maxrss`` is the fallback elsewhere; on Linux it is not used because it
    carries the parent's resident set at the fork into the child (a benchmark parent of several GB would
    show as every stage's floor)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024    # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    import sqlalchemy as sa

    from calpads import pipeline
    from calpads.run_scope import RunScope

    scope = RunScope.from_params(args.record_type, {"academic_year": YEAR, "save_history": True},
                                 today=date.fromisoformat(args.today))
    ctx = pipeline.RunContext(args.record_type, f"calpads_{args.record_type.lower()}", args.run_id, scope,
                              args.work, args.publish_root)
    sis = sa.create_engine(args.sis) if args.sis else None
    store = sa.create_engine(args.store) if args.store else None
    calls = {
        "extract": lambda: pipeline.extract(ctx, sis),
        "gate": lambda: pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5),
        "diff": lambda: pipeline.diff(ctx, store),
        "publish": lambda: pipeline.publish(ctx),
        "save_history": lambda: pipeline.save_history(ctx, store),
        "bare": lambda: _bare(sis, scope, args.work / "bare.txt"),
    }
    if args.stage == "stas_sql":   # the schools in scope are known before the aggregation is timed
        calls["stas_sql"] = _stas_sql(sis, scope)
    # What the task pays before it reads a record, counted in import_seconds (not in the stage call) alike for
    # both stages that validate with GX: GX's import, its file context and the suites (the extract's staging gate).
    if args.stage == "gate":
        from calpads.quality.gate import gx_context, gx_suite

        gx_suite(args.record_type) and gx_context()
    if args.stage == "extract":
        from calpads.quality.staging import SUITES, staging_suite

        for name in SUITES.values():
            staging_suite(name)
    t_imports = time.perf_counter() - _T_START
    t0, cpu0 = time.perf_counter(), time.process_time()
    out = calls[args.stage]()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    records = int(out[COUNT_KEY[args.stage]]) if isinstance(out, dict) else int(out)
    if isinstance(out, dict) and args.stage == "diff":
        records += int(out.get("unchanged", 0))
    extra = {"staging_seconds": out["staging_seconds"]} if isinstance(out, dict) and "staging_seconds" in out else {}
    return {"stage": args.stage, "seconds": round(seconds, 3), "import_seconds": round(t_imports, 3),
            "cpu_seconds": round(cpu, 3),
            "records": records, "peak_rss_mb": round(peak_rss_mb()), **extra}


def _bare(sis: Any, scope: Any, path: Path) -> int:
    from bench_sprg import bare_baseline

    from calpads.extracts.common import program_set
    from calpads.layouts import load_layout

    return bare_baseline(sis, program_set(load_layout("SPRG"), scope), path)


def _stas_sql(sis: Any, scope: Any) -> Any:
    """The STAS baseline's call: the SQL aggregation of attendance alone, for the schools in scope."""
    from calpads.extracts import stas
    from calpads.sources.sql_attendance import category_counts
    from calpads.sources.sql_enrollment import pull_enrollment

    cfg = stas.settings()
    numbers = [int(x) for x in pull_enrollment(sis, scope).scoped_schools["school_number"]]
    return lambda: len(category_counts(sis, scope, numbers, list(cfg["categories"]), cfg["categories"],
                                       cfg["uncategorised_absent"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=STAGES)
    ap.add_argument("--record-type", default="SPRG")
    ap.add_argument("--work", type=Path, required=True, help="the run's work folder")
    ap.add_argument("--publish-root", type=Path, required=True)
    ap.add_argument("--run-id", default="bench__run1")
    ap.add_argument("--today", default="2026-05-01")
    ap.add_argument("--sis", help="SIS database URL (extract, bare, stas_sql)")
    ap.add_argument("--store", help="history store URL (diff, save_history)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)   # the stages' own log lines would bury the JSON line
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
