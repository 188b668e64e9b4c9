"""What did we send CALPADS? For the coordinator, on a protected machine (it prints student fields).

    python -m calpads.history.cli student --record-type SPRG --local-id 12345 --url postgresql://...
    python -m calpads.history.cli student --record-type SPRG --ssid 1234567890 --url sqlite:////path/store.db
    python -m calpads.history.cli runs --record-type SPRG --url ...

``--url`` defaults to $CALPADS_STORE_URL, then to the Airflow connection $AIRFLOW_CONN_CALPADS_STORE.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd
import sqlalchemy as sa

from calpads.history.store import HistoryStore


def _url(value: str | None) -> str:
    url = value or os.environ.get("CALPADS_STORE_URL") or os.environ.get("AIRFLOW_CONN_CALPADS_STORE")
    if not url:
        raise SystemExit("no store: give --url (or set CALPADS_STORE_URL)")
    # Airflow connection URIs name PostgreSQL "postgres://"; SQLAlchemy wants "postgresql://".
    return "postgresql://" + url[len("postgres://"):] if url.startswith("postgres://") else url


def _print(df: pd.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        print(df.to_json(orient="records", indent=2, date_format="iso"))
    elif df.empty:
        print("(nothing saved)")
    else:
        # One block per saved record: field = value, blanks shown as empty.
        for i, row in enumerate(df.to_dict(orient="records")):
            print(f"--- {i + 1}")
            for k, v in row.items():
                print(f"{k:>24}  {'' if v is None or (isinstance(v, float) and pd.isna(v)) else v}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m calpads.history.cli", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    st = sub.add_parser("student", help="every saved record of one student, oldest first")
    st.add_argument("--record-type", required=True)
    who = st.add_mutually_exclusive_group(required=True)
    who.add_argument("--local-id", help="Local Student ID")
    who.add_argument("--ssid")
    st.add_argument("--lea", help="Reporting LEA (7-digit CDS code); default: all")
    runs = sub.add_parser("runs", help="the saved runs, oldest first")
    runs.add_argument("--record-type")
    runs.add_argument("--lea")
    runs.add_argument("--academic-year")
    for p in (st, runs):
        p.add_argument("--url", help="SQLAlchemy URL of the calpads_store database")
        p.add_argument("--format", choices=("text", "csv", "json"), default="text")
    args = ap.parse_args(argv)

    engine = sa.create_engine(_url(args.url))
    try:
        store = HistoryStore(engine)
        if args.command == "student":
            df = store.records_for_student(args.record_type.upper(), local_student_id=args.local_id, ssid=args.ssid,
                                           lea=args.lea)
        else:
            df = store.runs(args.record_type, args.lea, args.academic_year)
        _print(df, args.format)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
