"""calpads-demo-district: generate the demo district's SIS database.

    calpads-demo-district --url sqlite:////abs/path/sis.db --students 2000 --dirty 0.01 --replace
    calpads-demo-district --url sqlite:////abs/path/lea2.db --students 300 --lea-code 5611111
    python -m calpads.demo.cli --url postgresql+psycopg2://postgres@127.0.0.1:5432/sis --students 50000

Progress and timings go to stderr; the summary (counts only, no student data)
is printed to stdout as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import sqlalchemy as sa

from calpads.demo.loader import TablesExistError
from calpads.run_scope import ScopeError, academic_year_bounds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="calpads-demo-district", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="SQLAlchemy URL: sqlite:////abs/path/sis.db or postgresql://...")
    ap.add_argument("--students", type=int, default=2000, help="number of students (default 2000)")
    ap.add_argument("--seed", type=int, default=42, help="random seed; same seed, same rows (default 42)")
    ap.add_argument("--dirty", type=float, default=0.0,
                    help="share of students carrying one planted rule violation, e.g. 0.01 (default 0: clean)")
    ap.add_argument("--academic-year", default="2025-2026", help="CCYY-CCYY (default 2025-2026)")
    ap.add_argument("--replace", action="store_true", help="drop and recreate existing SIS tables")
    ap.add_argument("--attendance", action=argparse.BooleanOptionalAction, default=None,
                    help="fill ATTENDANCE (default: on for <= 50,000 students)")
    ap.add_argument("--afterschool-dir", help="also write the afterschool platform's CSV exports here")
    ap.add_argument("--lea-code", default="5699999",
                    help="the 7-digit Reporting LEA code the SIS holds (default 5699999). Another code also gives "
                         "its own school codes, local student ids and SSIDs, for demo LEAs side by side")
    args = ap.parse_args(argv)
    if args.students < 1:
        ap.error("--students must be at least 1")
    if not 0.0 <= args.dirty <= 0.5:
        ap.error("--dirty must be between 0 and 0.5")
    try:
        academic_year_bounds(args.academic_year)
    except ScopeError as exc:
        ap.error(str(exc))
    if not (len(args.lea_code) == 7 and args.lea_code.isdigit()):
        ap.error("--lea-code must be 7 digits (the CDS county and district codes), e.g. 5699999")
    return args


def _url(raw: str) -> sa.URL:
    url = sa.make_url(raw)
    if url.drivername == "postgresql":   # plain postgresql:// as Airflow writes it
        url = url.set(drivername="postgresql+psycopg2")
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        from calpads.private_files import create_private

        create_private(url.database)   # student data: 0600 before SQLite would create it with the umask's mode
    return url


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from calpads.demo.generator import generate_district  # numpy/pandas only once the arguments are good

    engine = sa.create_engine(_url(args.url))
    try:
        summary = generate_district(engine, students=args.students, seed=args.seed, dirty=args.dirty,
                                    academic_year=args.academic_year, attendance=args.attendance,
                                    afterschool_dir=args.afterschool_dir, replace=args.replace,
                                    lea_code=args.lea_code)
    except TablesExistError as exc:
        print(f"calpads-demo-district: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
