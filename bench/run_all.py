"""All the benchmarks of issue 9 in one command: SPRG and STAS, stage by stage, per size and backend.

    .venv/bin/python bench/run_all.py [--sizes 50000,200000,500000] [--backends sqlite,postgresql]
                                      [--program-scale 25] [--no-daily-attendance] [--skip-stas]

For each backend and size: generates a program-dense district (``program_rate_scale``: ~3 SPRG
records per student, ~1.5M at 500,000 students) with daily attendance, then times, each beside
its baseline measured in the same run. Each pipeline stage and each baseline runs in its own fresh
Python process (bench/stage.py), as an Airflow task does, and reports the stage call's seconds and
the process's own peak RSS (VmHWM, bench/stage.py); the end to end is given twice, as the sum of the stage
calls and as the sum of the task processes' wall time (interpreter start, imports and GX's context
included):

- SPRG: the bare baseline (the same program rows SELECTed into a caret file), the pipeline
  stages extract (pull + build), gate, diff (first submission), publish, save history, and the
  sum of them (end to end, against the bare baseline); unless --skip-extras, in the parent
  process from the run's work files: the gate's core (``run_gate``) against the
  plain vectorised pandas pass of the same suite (bench/gate_vs_pandas.py); a second run's diff
  against the first run's history (its own process; then the store read and ``compute_transactions``
  alone); the
  file writer (``render_files``: full + split files) against one polars ``write_csv`` of the same
  frame (pyarrow's ``write_csv`` when polars is not installed);
  the held-back filter (``without_held_back``) is timed apart;
- the history store is a second database on the same backend;
- STAS: the pipeline stages (extract = enrollment pull + SQL aggregation + build, gate, diff,
  publish, save history) and end to end, beside the SQL aggregation alone.

On PostgreSQL the exception-only attendance of the generator is padded in SQL with a 'P'
(present) row for every other in-session enrolled day (a year of daily attendance: ~85M rows at
500,000 students); generation and padding are not measured stages.

Prints one table (stage, size, backend, seconds, records, records/s, peak RSS, baseline, ratio,
1-minute load average) and a growth line per stage; writes bench/results/bench.csv (this run),
appends bench/results/bench_history.csv, and draws bench/results/bench.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from bench_sprg import PeakRSS  # noqa: E402

RESULTS = HERE / "results"
PG_ADMIN = os.environ.get("CALPADS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
FIELDS = ["stage", "students", "backend", "seconds", "records", "records_per_s", "peak_rss_mb", "baseline",
          "baseline_seconds", "ratio", "load1"]
YEAR = "2025-2026"


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, stage: str, students: int, backend: str, seconds: float, records: int, peak_mb: float,
            baseline: str = "", baseline_seconds: float | None = None) -> dict[str, Any]:
        row = {"stage": stage, "students": students, "backend": backend, "seconds": round(seconds, 3),
               "records": records, "records_per_s": round(records / seconds) if seconds and records else "",
               "peak_rss_mb": round(peak_mb) if peak_mb else "", "baseline": baseline,
               "baseline_seconds": round(baseline_seconds, 3) if baseline_seconds else "",
               "ratio": round(seconds / baseline_seconds, 2) if baseline_seconds else "",
               "load1": round(os.getloadavg()[0], 2)}
        self.rows.append(row)
        print(fmt(row), flush=True)
        return row

    def timed(self, stage: str, students: int, backend: str, fn: Callable[[], Any],
              count: Callable[[Any], int], **baseline: Any) -> tuple[Any, dict[str, Any]]:
        t0 = time.perf_counter()
        with PeakRSS() as rss:
            out = fn()
        seconds = time.perf_counter() - t0
        return out, self.add(stage, students, backend, seconds, count(out), rss.peak / 2**20, **baseline)


HEADER = (f"{'stage':<40} {'students':>8} {'backend':<10} {'seconds':>8} {'records':>9} {'rec/s':>9} "
          f"{'RSS MB':>7} {'baseline (s)':>28} {'ratio':>6} {'load':>5}")


def fmt(r: dict[str, Any]) -> str:
    base = f"{r['baseline']} {r['baseline_seconds']}" if r["baseline"] else ""
    return (f"{r['stage']:<40} {r['students']:>8} {r['backend']:<10} {r['seconds']:>8.2f} {r['records']:>9} "
            f"{r['records_per_s']!s:>9} {r['peak_rss_mb']!s:>7} {base:>28} {r['ratio']!s:>6} {r['load1']:>5}")


# --------------------------------------------------------------------------- databases
def create_sis(backend: str, students: int, work: Path, prefix: str = "sis") -> tuple[sa.Engine, Callable[[], None]]:
    if backend == "sqlite":
        path = work / f"{prefix}_{students}.db"
        path.unlink(missing_ok=True)
        eng = sa.create_engine(f"sqlite:///{path}")
        return eng, lambda: (eng.dispose(), path.unlink(missing_ok=True))
    name = f"bench_{prefix}_{students}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    eng = sa.create_engine(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")

    def drop() -> None:
        eng.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    return eng, drop


PAD_SQL = """
INSERT INTO attendance (id, studentid, schoolid, att_date, attendance_codeid, att_mode_code)
SELECT {first_id} + row_number() OVER (), e.studentid, e.schoolid, cd.date_value, ac.id, 'ATT_ModeDaily'
FROM (SELECT id AS studentid, schoolid, entrydate, exitdate FROM students WHERE enroll_status <> -1
      UNION ALL SELECT studentid, schoolid, entrydate, exitdate FROM reenrollments) e
JOIN calendar_day cd ON cd.schoolid = e.schoolid AND cd.insession = 1 AND cd.date_value >= e.entrydate
     AND (e.exitdate IS NULL OR cd.date_value < e.exitdate)
JOIN attendance_code ac ON ac.schoolid = e.schoolid AND ac.att_code = 'P'
WHERE NOT EXISTS (SELECT 1 FROM attendance a WHERE a.studentid = e.studentid AND a.att_date = cd.date_value)
"""


def pad_daily_attendance(eng: sa.Engine) -> int:
    """A 'P' row for every in-session enrolled day without an exception row (a year of daily attendance)."""
    with eng.begin() as c:
        c.exec_driver_sql("SET LOCAL synchronous_commit = off")
        c.exec_driver_sql("DROP INDEX IF EXISTS attendance_student_date")
        first_id = c.exec_driver_sql("SELECT coalesce(max(id), 0) FROM attendance").scalar()
        c.exec_driver_sql(PAD_SQL.format(first_id=int(first_id)))
        c.exec_driver_sql("CREATE INDEX attendance_student_date ON attendance (studentid, att_date)")
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE")
        return int(c.exec_driver_sql("SELECT count(*) FROM attendance").scalar())


def engine_url(eng: sa.Engine) -> str:
    return eng.url.render_as_string(hide_password=False)


def run_stage_process(stage: str, ctx: Any, sis: sa.Engine | None = None,
                      store: sa.Engine | None = None) -> dict[str, Any]:
    """One stage in a fresh Python process (bench/stage.py), as an Airflow task runs it: its JSON line,
    plus ``process_seconds`` (the child's whole wall time: interpreter start, imports and the stage)."""
    cmd = [sys.executable, str(HERE / "stage.py"), stage, "--record-type", ctx.record_type,
           "--work", str(ctx.work_dir), "--publish-root", str(ctx.publish_root), "--run-id", ctx.run_id,
           "--today", ctx.scope.today.isoformat()]
    if sis is not None:
        cmd += ["--sis", engine_url(sis)]
    if store is not None:
        cmd += ["--store", engine_url(store)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"stage {stage} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_seconds"] = wall
    return out


def stage_row(t: Table, label: str, n: int, backend: str, out: dict[str, Any], **baseline: Any) -> dict[str, Any]:
    row = t.add(label, n, backend, out["seconds"], out["records"], out["peak_rss_mb"], **baseline)
    print(f"    (process {out['process_seconds']:.2f} s, of which imports{' + GX' if 'gate' in label else ''} "
          f"{out['import_seconds']:.2f} s; the stage call's CPU {out['cpu_seconds']:.2f} s)", flush=True)
    row["process_seconds"] = out["process_seconds"]
    return row


def pipeline_stages(t: Table, ctx: Any, sis: sa.Engine, store: sa.Engine, n: int, backend: str,
                    labels: tuple[str, ...], baseline: str, baseline_seconds: float) -> None:
    """Each of the DAG's stages (extract, gate, diff, publish, save history) in its own fresh process, in
    order, then their sums: the stage calls alone, and the task processes' whole wall time."""
    (ctx.publish_root).mkdir(parents=True, exist_ok=True)   # the publish root exists before a run
    runs = [("extract", {"sis": sis}), ("gate", {}), ("diff", {"store": store}), ("publish", {}),
            ("save_history", {"store": store})]
    done = [stage_row(t, label, n, backend, run_stage_process(stage, ctx, **engines))
            for label, (stage, engines) in zip(labels, runs, strict=False)]
    peak = max(r["peak_rss_mb"] for r in done)
    t.add(labels[5], n, backend, sum(r["seconds"] for r in done), done[0]["records"], peak,
          baseline, baseline_seconds)
    t.add(labels[5].replace("(sum of stages)", "(sum of task processes)"), n, backend,
          sum(r["process_seconds"] for r in done), done[0]["records"], peak, baseline, baseline_seconds)


# --------------------------------------------------------------------------- SPRG
def bench_sprg(t: Table, sis: sa.Engine, store: sa.Engine, work: Path, n: int, backend: str,
               extras: bool = True) -> None:
    from calpads import pipeline
    from calpads.run_scope import RunScope

    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, "save_history": True}, today=date(2026, 5, 1))
    ctx = pipeline.RunContext("SPRG", "calpads_sprg", "bench__run1", scope, work / "run1", work / "pub")
    pipeline.prepare_work_dir(ctx)
    bare = stage_row(t, "SPRG bare SELECT -> caret (baseline)", n, backend, run_stage_process("bare", ctx, sis))
    pipeline_stages(t, ctx, sis, store, n, backend, ("SPRG extract (pull + build)", "SPRG gate (stage)",
                    "SPRG diff (first submission)", "SPRG publish", "SPRG save history",
                    "SPRG end to end (sum of stages)"), "bare SELECT", bare["seconds"])
    if extras:
        sprg_extras(t, ctx, store, work, n, backend)


def sprg_extras(t: Table, ctx: Any, store: sa.Engine, work: Path, n: int, backend: str) -> None:
    """Stage parts beside their own baselines, in this (parent) process, from the work files of run 1; the
    second run's diff against the history runs in its own process like the stages."""
    from gate_vs_pandas import pandas_pass

    from calpads import pipeline
    from calpads.history.diff import compute_transactions, without_held_back
    from calpads.history.store import HistoryStore
    from calpads.layouts import load_layout
    from calpads.publish.writer import render_files
    from calpads.quality.gate import run_gate, validation_frame

    layout, scope = load_layout("SPRG"), ctx.scope

    # Gate core against the plain pandas pass of the same suite, on the same records.
    records = pd.read_parquet(ctx.path(pipeline.RECORDS))
    t0 = time.perf_counter()
    counts = pandas_pass(validation_frame(records, layout, scope.today), scope.today)
    t_pandas = time.perf_counter() - t0
    result, _ = t.timed("SPRG gate core (run_gate)", n, backend,
                        lambda: run_gate(records, "SPRG", scope.today, error_ceiling=0.5), lambda r: len(records),
                        baseline="pandas pass", baseline_seconds=t_pandas)
    gx_counts = {k: v["count"] for k, v in result.summary["rules"].items()}
    if gx_counts != counts:
        print(f"  WARNING: gate and pandas pass disagree: {gx_counts} vs {counts}")
    del result

    # Writer against one write_csv of the same frame.
    diffed = pd.read_parquet(ctx.path(pipeline.DIFFED))
    baseline_name, write_baseline = _write_baseline()
    t0 = time.perf_counter()
    write_baseline(diffed[layout.columns], work / "baseline_write.txt")
    t_write = time.perf_counter() - t0
    out_dir = work / "render"
    t.timed("SPRG render_files (full + split)", n, backend,
            lambda: render_files(diffed, layout, out_dir, "bench"), lambda files: int(files[0].records),
            baseline=baseline_name, baseline_seconds=t_write)
    shutil.rmtree(out_dir, ignore_errors=True)

    # A second run of the same data: the diff against the first run's history (all records unchanged).
    ctx2 = pipeline.RunContext("SPRG", "calpads_sprg", "bench__run2", scope, work / "run2", work / "pub")
    pipeline.prepare_work_dir(ctx2)
    for name in (pipeline.PUBLISHABLE, pipeline.HELD_BACK, pipeline.NOT_EXTRACTED, pipeline.ENROLLED, pipeline.STATE):
        if ctx.path(name).exists():
            shutil.copyfile(ctx.path(name), ctx2.path(name))
    shutil.copytree(ctx.path("report"), ctx2.path("report"))   # the gate's report folder: the diff adds to it
    stage_row(t, "SPRG diff vs history (stage)", n, backend, run_stage_process("diff", ctx2, store=store))
    hist = HistoryStore(store)
    last, _ = t.timed("SPRG history read (last_submitted)", n, backend,
                      lambda: hist.last_submitted("SPRG", ctx.state()["lea"], YEAR, exclude_run_id="bench__run2"),
                      len)
    held_back = pd.read_parquet(ctx.path(pipeline.HELD_BACK))
    not_extracted = pd.read_parquet(ctx.path(pipeline.NOT_EXTRACTED))
    t.timed("SPRG held-back filter (without_held_back)", n, backend,
            lambda: without_held_back(last, held_back, layout, not_extracted), len)
    publishable = pd.read_parquet(ctx.path(pipeline.PUBLISHABLE))[layout.columns]
    t.timed("SPRG diff core (compute_transactions)", n, backend,
            lambda: compute_transactions(publishable, layout, last, "submission", pipeline.scope_filter(ctx2),
                                         read_fields=lambda rows: hist.fields_of(layout, rows)),
            lambda r: len(publishable))


def _write_baseline() -> tuple[str, Callable[[pd.DataFrame, Path], None]]:
    try:
        import polars as pl

        def write(df: pd.DataFrame, path: Path) -> None:
            pl.from_pandas(df).write_csv(path, separator="^", include_header=False, quote_style="never")
        return "polars write_csv", write
    except ImportError:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        def write_pa(df: pd.DataFrame, path: Path) -> None:
            table = pa.Table.from_pandas(df, preserve_index=False,
                                         schema=pa.schema([(c, pa.string()) for c in df.columns]))
            pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, delimiter="^",
                                                            quoting_style="none"))
        return "pyarrow write_csv (no polars)", write_pa


# --------------------------------------------------------------------------- STAS
def bench_stas(t: Table, sis: sa.Engine, store: sa.Engine, work: Path, n: int, backend: str, att_rows: int) -> None:
    from calpads import pipeline
    from calpads.run_scope import RunScope

    scope = RunScope.from_params("STAS", {"academic_year": YEAR, "save_history": True}, today=date(2026, 6, 20))
    ctx = pipeline.RunContext("STAS", "calpads_stas", "bench__stas1", scope, work / "stas1", work / "pub")
    pipeline.prepare_work_dir(ctx)
    # The baseline: the enrollment pull (to know the schools) and the SQL aggregation, in their own process.
    agg = stage_row(t, f"STAS SQL aggregation ({att_rows / 1e6:.1f}M att rows)", n, backend,
                    run_stage_process("stas_sql", ctx, sis))
    pipeline_stages(t, ctx, sis, store, n, backend, ("STAS extract (pull + SQL agg + build)", "STAS gate (stage)",
                    "STAS diff", "STAS publish", "STAS save history", "STAS end to end (sum of stages)"),
                    "SQL aggregation", agg["seconds"])


# --------------------------------------------------------------------------- report
def growth(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    keys = dict.fromkeys((r["stage"].split(" (")[0] if r["stage"].startswith("STAS SQL") else r["stage"],
                          r["backend"]) for r in rows)
    for stage, backend in keys:
        pts = sorted((r["students"], r["seconds"]) for r in rows if r["backend"] == backend
                     and (r["stage"] == stage or r["stage"].split(" (")[0] == stage))
        if len(pts) < 2 or not pts[0][1]:
            continue
        (n0, s0), (n1, s1) = pts[0], pts[-1]
        out.append(f"{stage:<40} {backend:<10} {n0:>7}->{n1:<7} time x{s1 / s0:6.1f} for size x{n1 / n0:4.1f}"
                   f"  (per-student cost x{(s1 / s0) / (n1 / n0):.2f})")
    return out


def write_results(rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "bench.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["run", *FIELDS], extrasaction="ignore")
        w.writeheader()
        run = time.strftime("%Y-%m-%dT%H:%M:%S")
        w.writerows({"run": run, **r} for r in rows)
    hist = RESULTS / "bench_history.csv"
    new = not hist.exists()
    with hist.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["run", *FIELDS], extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerows({"run": run, **r} for r in rows)
    try:
        from png_chart import draw_chart

        draw_chart(rows, RESULTS / "bench.png")
        print(f"chart: {RESULTS / 'bench.png'}")
    except Exception as exc:  # noqa: BLE001 - the chart is a convenience, the CSV is the result
        print(f"chart not drawn: {exc}")


def print_markdown(path: Path) -> None:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    print("| stage | students | backend | s | records/s | peak RSS MB | baseline | ratio | load |")
    print("|---|---:|---|---:|---:|---:|---|---:|---:|")
    for r in rows:
        base = f"{r['baseline']} {float(r['baseline_seconds']):.2f} s" if r["baseline"] else ""
        print(f"| {r['stage']} | {int(r['students']):,} | {r['backend']} | {float(r['seconds']):.2f} | "
              f"{r['records_per_s']} | {r['peak_rss_mb']} | {base} | {r['ratio']} | {r['load1']} |")
    for r in rows:
        r["students"], r["seconds"] = int(r["students"]), float(r["seconds"])
    print("\n" + "\n".join(growth(rows)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50000,200000,500000")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--program-scale", type=float, default=25.0, help="generator program_rate_scale")
    ap.add_argument("--no-daily-attendance", action="store_true", help="PostgreSQL: do not pad to daily rows")
    ap.add_argument("--skip-stas", action="store_true")
    ap.add_argument("--skip-sprg", action="store_true")
    ap.add_argument("--skip-extras", action="store_true",
                    help="SPRG: only the stages and the bare baseline (no gate core, writer, diff vs history)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--markdown", action="store_true", help="print bench/results/bench.csv as a Markdown table")
    args = ap.parse_args()
    if args.markdown:
        print_markdown(RESULTS / "bench.csv")
        return 0
    logging.disable(logging.WARNING)   # the stages' own log lines would bury the table

    from calpads.demo.generator import generate_district

    try:
        import polars  # noqa: F401
    except ImportError:
        print("note: polars is not installed in the venv; the writer's baseline is pyarrow's write_csv")
    t = Table()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="calpads-bench-"))
    for backend in args.backends.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            work = root / f"{backend}_{n}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            sis, drop = create_sis(backend, n, work)
            store, drop_store = create_sis(backend, n, work, prefix="store")   # the history store, same backend
            try:
                t0 = time.perf_counter()
                summary = generate_district(sis, students=n, seed=7, dirty=0.01, academic_year=YEAR,
                                            attendance=not args.skip_stas, log=lambda m: None,
                                            program_rate_scale=args.program_scale)
                gen = time.perf_counter() - t0
                att_rows = summary.attendance_rows
                pad = 0.0
                if backend == "postgresql" and not args.skip_stas and not args.no_daily_attendance:
                    t0 = time.perf_counter()
                    att_rows = pad_daily_attendance(sis)
                    pad = time.perf_counter() - t0
                print(f"# {backend} {n:,} students: generated in {gen:.0f} s ({sum(summary.programs.values()):,} "
                      f"program rows, {summary.attendance_rows:,} attendance exception rows)"
                      + (f"; padded to {att_rows:,} daily attendance rows in {pad:.0f} s" if pad else "")
                      + f"; load {os.getloadavg()[0]:.2f}", flush=True)
                if not args.skip_sprg:
                    bench_sprg(t, sis, store, work, n, backend, extras=not args.skip_extras)
                if not args.skip_stas:
                    bench_stas(t, sis, store, work, n, backend, att_rows)
            finally:
                drop()
                drop_store()
                shutil.rmtree(work, ignore_errors=True)
    print()
    print(HEADER)
    for r in t.rows:
        print(fmt(r))
    print("\ngrowth (smallest -> largest size; linear = per-student cost x1.00):")
    for line in growth(t.rows):
        print("  " + line)
    write_results(t.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
