"""Benchmark the STAS extract on a generated district's attendance in PostgreSQL.

    python bench/bench_stas.py --students 500000 [--keep-db NAME] [--reuse-db NAME]

Generates the demo district with daily attendance (attendance=True) into a fresh PostgreSQL
database, then times: the SQL aggregation of attendance (GROUP BY in the database), the
enrollment pull, the whole STAS build (pull + aggregation + pandas), and the gate. Prints and
appends the figures to bench/results/stas.csv (no student data). The database is dropped unless
--keep-db is given.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import sqlalchemy as sa

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = os.environ.get("CALPADS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def timed(rows: list, name: str, fn, **info):
    t0 = time.perf_counter()
    out = fn()
    s = time.perf_counter() - t0
    rows.append({"stage": name, "seconds": round(s, 2), **info})
    print(f"{name:<34} {s:9.2f} s", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=500_000)
    ap.add_argument("--keep-db", help="keep the generated database under this name")
    ap.add_argument("--reuse-db", help="skip generation: use this existing database")
    args = ap.parse_args()

    from calpads.extracts import stas
    from calpads.quality.gate import run_gate
    from calpads.run_scope import RunScope
    from calpads.sources.sql_attendance import category_counts

    name = args.reuse_db or args.keep_db or f"calpads_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    rows: list[dict] = []
    if not args.reuse_db:
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        eng = sa.create_engine(url)
        if not args.reuse_db:
            from calpads.demo.generator import generate_district

            summary = timed(rows, "generate district (not STAS)", lambda: generate_district(
                eng, students=args.students, seed=42, attendance=True, log=lambda m: None))
            print(f"  {summary.attendance_rows:,} attendance rows, {summary.enrollments:,} enrollments")
            with eng.begin() as c:
                c.exec_driver_sql("ANALYZE")
        with eng.connect() as c:
            att_rows = c.exec_driver_sql("SELECT count(*) FROM attendance").scalar()
        scope = RunScope.from_params("STAS", {"academic_year": "2025-2026"}, today=date(2026, 6, 20))
        cfg = stas.settings()
        from calpads.sources.sql_enrollment import pull_enrollment

        pull = timed(rows, "enrollment pull", lambda: pull_enrollment(eng, scope))
        numbers = [int(n) for n in pull.scoped_schools["school_number"]]
        counts = timed(rows, "SQL attendance aggregation", lambda: category_counts(
            eng, scope, numbers, list(cfg["categories"]), cfg["categories"], cfg["uncategorised_absent"]))
        inputs = stas.StasInputs(pull, counts, None)
        records, _ = timed(rows, "pandas build (expected days)", lambda: stas.build_stas(inputs, scope))
        def staged_build() -> object:
            from calpads.staging.local import staged_from_sql

            with staged_from_sql(eng, stas.TABLES, scope) as staged:
                return stas.build_stas(stas.stas_inputs(staged, scope), scope)

        timed(rows, "STAS stage + build end to end", staged_build)
        timed(rows, "quality gate", lambda: run_gate(records, "STAS", scope.today, error_ceiling=1.0))
        print(f"  {len(records):,} STAS records from {att_rows:,} attendance rows")
        for r in rows:
            r.update(students=args.students, attendance_rows=att_rows, stas_records=len(records))
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / "stas.csv"
        new = not out.exists()
        with out.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["stage", "seconds", "students", "attendance_rows", "stas_records"])
            if new:
                w.writeheader()
            w.writerows(rows)
        eng.dispose()
    finally:
        if not (args.keep_db or args.reuse_db):
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
