"""Benchmark of the transaction diff: N current SPRG records against N last-submitted records.

    python bench/bench_diff.py                 # 1.5M vs 1.5M (the target: diff under 2 s)
    python bench/bench_diff.py --stage --store URL   # the diff stage against the store bench_save.py wrote

The history frame is what ``HistoryStore.last_submitted`` returns (layout columns + hist_op_key,
hist_hash), built outside the timing. Of the current records: 1% have a changed end date, 0.5%
are new keys; 0.5% of the history keys are no longer extracted (deletes, all in scope).
``--stage``: the next night's diff stage as ``pipeline.diff`` runs it against a store that holds a saved
1.5M-record history (``bench/bench_save.py`` writes it): ``history_base``, ``last_submitted`` (keys and
hashes), the guard's in-scope count, ``still_in_sis``, ``compute_transactions`` with the deletes' fields
read from the store; one measurement per process, peak RSS of the process (records generation included).
Peak memory: the process's peak RSS while the diff ran (Linux: VmHWM after resetting it), and
tracemalloc's peak of Python-tracked allocations (numpy/pandas; not DuckDB's or Arrow's own).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from calpads.history.diff import HIST_HASH, HIST_OP_KEY, ScopeFilter, compute_transactions
from calpads.history.keys import hash_sql, op_key_sql, string_frame
from calpads.layouts import Layout, load_layout

LEA, YEAR = "1234567", "2025-2026"
PROGRAMS = np.array(["101", "108", "113", "122", "162", "174", "180", "190"], dtype=object)


def _text(values: np.ndarray, prefix: str = "") -> np.ndarray:
    out = values.astype(str).astype(object)
    return (prefix + out) if prefix else out


def make_records(n: int, layout: Layout, first_id: int = 0) -> pd.DataFrame:
    """n SPRG records, ~3 per student, 40 schools, as the extract produces them (str or None)."""
    ids = np.arange(first_id, first_id + n)
    student = ids // 3
    cols: dict[str, np.ndarray] = {
        "record_type": np.full(n, "SPRG", dtype=object),
        "transaction_type": np.full(n, None, dtype=object),
        "local_record_id": _text(student) + "." + _text(ids),
        "reporting_lea": np.full(n, LEA, dtype=object),
        "school_of_attendance": _text(7_654_300 + student % 40),
        "academic_year_id": np.full(n, YEAR, dtype=object),
        "ssid": _text(1_000_000_000 + student),
        "local_student_id": _text(100_000 + student),
        # Per-student values derived from the student number, so the same record is generated alike twice.
        "legal_first_name": _text(student * 7_919 % 5_000, "First"),
        "legal_last_name": _text(student * 104_729 % 20_000, "Last"),
        "birth_date": _text(20_100_101 + student % 9 * 10_000 + student % 12 * 100),
        "gender_code": np.where(student % 2 == 0, "F", "M").astype(object),
        "program_code": PROGRAMS[ids % len(PROGRAMS)],
        "membership_code": np.full(n, "3", dtype=object),
        "membership_start_date": _text(20_250_820 + ids % 9),
        "membership_end_date": np.where(ids % 7 == 0, "20260115", None).astype(object),
        "service_academic_year": np.full(n, None, dtype=object),
        "service_code": np.full(n, None, dtype=object),
        "cpa_id": np.full(n, None, dtype=object),
        "migrant_id": np.full(n, None, dtype=object),
        "primary_disability_code": np.full(n, None, dtype=object),
        "dsea": np.full(n, None, dtype=object),
        "homeless_dwelling_type": np.full(n, None, dtype=object),
        "unaccompanied_youth": np.full(n, None, dtype=object),
        "runaway_youth": np.full(n, None, dtype=object),
    }
    is_122 = cols["program_code"] == "122"
    cols["service_academic_year"] = np.where(is_122, YEAR, None).astype(object)
    cols["service_code"] = np.where(is_122, "08", None).astype(object)
    return pd.DataFrame({c: cols[c] for c in layout.columns})


def as_last_submitted(history: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """Add the op key and hash columns as the store returns them."""
    frame = string_frame(history, layout.columns)
    with duckdb.connect() as con:
        con.register("frame", frame)
        sql = f"SELECT {op_key_sql(layout)} AS k, {hash_sql(layout)} AS h FROM frame"  # noqa: S608
        kh = con.sql(sql).df()
    out = history.copy()
    out[HIST_OP_KEY] = kh["k"].to_numpy(dtype=object)
    out[HIST_HASH] = kh["h"].to_numpy(dtype=object)
    return out


def frames(n: int, layout: Layout) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    n_new = n_del = n // 200
    n_changed = n // 100
    history = make_records(n, layout)                       # ids 0 .. n-1
    current = make_records(n, layout, first_id=n_del)       # ids n_del .. n+n_del-1: first n_del deleted, last new
    changed_at = np.arange(0, n - n_new, (n - n_new) // n_changed)[:n_changed]
    end = current["membership_end_date"].to_numpy(dtype=object).copy()
    end[changed_at] = np.where(end[changed_at] == "20260301", "20260302", "20260301")
    current["membership_end_date"] = end
    expected = {"new": n_new, "changed": n_changed, "unchanged": n - n_new - n_changed, "deleted": n_del}
    return current, history, expected


def peak_rss_mb() -> float:
    """The process's peak RSS so far (Linux VmHWM), in MB."""
    return _rss_mb("VmHWM")


def time_stage(rows: int, url: str) -> None:
    import functools
    import os
    import subprocess
    import sys

    import sqlalchemy as sa

    from calpads.history.diff import still_in_sis
    from calpads.history.guard import in_scope_count
    from calpads.history.store import HistoryStore

    layout = load_layout("SPRG")
    path = Path(f"/tmp/bench_sprg_next_{rows}.parquet")
    if not path.exists():       # the extract's records, written by a child: its memory is not counted here
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[3]); import bench_diff as b; "
                        "b.frames(int(sys.argv[1]), b.load_layout('SPRG'))[0].to_parquet(sys.argv[2], index=False)",
                        str(rows), str(path), str(Path(__file__).resolve().parent)], check=True)
    n_new = n_del = rows // 200
    expected = {"new": n_new, "changed": rows // 100, "unchanged": rows - n_new - rows // 100, "deleted": n_del}
    current = pd.read_parquet(path)     # as pipeline.diff reads the publishable records
    held_back = current.iloc[:0]
    store = HistoryStore(sa.create_engine(url))
    store.migrate()
    t0 = time.perf_counter()
    base, _ = store.history_base("SPRG", LEA, YEAR, "bench_next_night")
    last = store.last_submitted("SPRG", LEA, YEAR, exclude_run_id="bench_next_night", as_of=base)
    t_read = time.perf_counter() - t0
    in_scope = in_scope_count(last, layout, ScopeFilter())
    kept = still_in_sis(last, held_back, layout, None)
    result = compute_transactions(current, layout, last, "submission", ScopeFilter(), never_delete=kept,
                                  read_fields=functools.partial(store.fields_of, layout))
    total = time.perf_counter() - t0
    if result.counts != expected or in_scope != rows:
        raise SystemExit(f"unexpected counts {result.counts} (in scope {in_scope}), expected {expected}")
    deletes = result.records[result.records["transaction_type"] == "D"]
    if deletes["legal_last_name"].isna().any():
        raise SystemExit("a delete record lacks its fields")
    print(f"diff stage {store.engine.dialect.name:<10} {total:6.2f} s (history read {t_read:5.2f} s)  "
          f"history={len(last):,} out={len(result.records):,}  peak RSS {peak_rss_mb():,.0f} MB  "
          f"load {os.getloadavg()[0]:.2f}", flush=True)


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def time_diff(current: pd.DataFrame, last: pd.DataFrame, layout: Layout, mode: str,
              repeat: int) -> dict[str, int]:
    """Time ``repeat`` calls (the first is reported apart: it pays for fresh memory pages), then
    one more under tracemalloc (which slows allocation down, so it is not timed)."""
    times, counts, out = [], {}, 0
    rss_before = _rss_mb("VmRSS")
    reset = _reset_peak_rss()
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = compute_transactions(current, layout, last, mode, ScopeFilter())
        times.append(time.perf_counter() - t0)
        counts, out = result.counts, len(result.records)
        del result
    peak = _rss_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    compute_transactions(current, layout, last, mode, ScopeFilter())
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    best = min(times[1:]) if len(times) > 1 else times[0]
    print(f"  {mode:<12} first {times[0]:5.2f} s, best of {len(times) - 1 or 1} after {best:5.2f} s   "
          f"out={out:>9,}   counts={counts}")
    print(f"  {'':<12} RSS before {rss_before:,.0f} MB, peak {peak:,.0f} MB (+{peak - rss_before:,.0f} MB); "
          f"tracemalloc peak {traced_peak / 2**20:,.0f} MB")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_500_000)
    ap.add_argument("--modes", default="submission,replacement")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", default="", help="with --stage: the store (SQLAlchemy URL) bench_save.py wrote")
    ap.add_argument("--stage", action="store_true", help="time the diff stage against --store")
    args = ap.parse_args()
    if args.stage:
        time_stage(args.rows, args.store)
        return
    layout = load_layout("SPRG")

    t0 = time.perf_counter()
    current, history, expected = frames(args.rows, layout)
    last = as_last_submitted(history, layout)
    print(f"{args.rows:,} current records vs {len(last):,} history rows ({len(layout.columns)} columns); "
          f"generated in {time.perf_counter() - t0:.1f} s")
    for mode in args.modes.split(","):
        counts = time_diff(current, last, layout, mode, args.repeat)
        if mode == "submission" and counts != expected:
            raise SystemExit(f"unexpected counts {counts}, expected {expected}")


if __name__ == "__main__":
    main()
