"""What did we send CALPADS? For the coordinator, on a protected machine (it prints student fields).

    python -m calpads.history.cli student --record-type SPRG --local-id 12345 --url postgresql://...
    python -m calpads.history.cli student --record-type SPRG --ssid 1234567890 --url sqlite:////path/store.db
    python -m calpads.history.cli runs --record-type SPRG --url ...
    python -m calpads.history.cli seed-from-ods --file ods_sprg.txt --url ... --lea 1234567 --academic-year 2025-2026

``seed-from-ods`` saves a CALPADS ODS extract as the submission history (a district starting
mid-year): one run ``ods-seed:<sha256 of the file>``, so the same file twice saves nothing new.
It prints counts only.

``--url`` defaults to $CALPADS_STORE_URL, then to the Airflow connection $AIRFLOW_CONN_CALPADS_STORE.
"""

from __future__ import annotations

import argparse
import json
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
    seed = sub.add_parser("seed-from-ods", help="save a CALPADS ODS extract as the submission history")
    seed.add_argument("--file", required=True, help="path or URL (file://, s3://...) of the ODS extract")
    seed.add_argument("--record-type", default="SPRG")
    seed.add_argument("--lea", required=True, help="Reporting LEA (7-digit CDS code) of the file's records")
    seed.add_argument("--academic-year", required=True, help="CCYY-CCYY of the file's records")
    for p in (st, runs, seed):
        p.add_argument("--url", help="SQLAlchemy URL of the calpads_store database")
        p.add_argument("--format", choices=("text", "csv", "json"), default="text")
    args = ap.parse_args(argv)
    if args.command == "seed-from-ods":
        return _seed(args)

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


def _seed(args: argparse.Namespace) -> int:
    from calpads.history.ods import OdsFormatError, seed_history
    from calpads.layouts import load_layout

    engine = sa.create_engine(_url(args.url))
    try:
        out = seed_history(HistoryStore(engine), args.file, load_layout(args.record_type.upper()), lea=args.lea,
                           academic_year=args.academic_year)
    except OdsFormatError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.format == "json":
        print(json.dumps(out, indent=2))
    else:
        state = "already seeded from this file: nothing saved" if out["already_seeded"] else f"{out['saved']} saved"
        print(f"{out['records_in_file']} records in the ODS file; {state} (run {out['run_id']}).")
        if out["history_keys_not_in_ods"]:
            print(f"Note: {out['history_keys_not_in_ods']} records of the history are not in this ODS file and "
                  "were left as they are.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
