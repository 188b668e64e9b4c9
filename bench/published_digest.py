"""sha256 of every file a run of each record type publishes, for a before/after byte-identity check.

    .venv/bin/python bench/published_digest.py --sis sqlite:////tmp/demo_sis.db --out /tmp/before.json
    .venv/bin/python bench/published_digest.py --sis sqlite:////tmp/demo_sis.db --out /tmp/after.json
    diff /tmp/before.json /tmp/after.json

The SIS is generated first when it is a SQLite file that does not exist (the demo district as
``calpads-demo-district --students 2000 --dirty 0.01`` makes it). Each record type runs the DAG's
stages (extract, gate, diff, publish, save history) with a fixed run id and run date into a fresh
temporary publish root and history store; a stage that fails is recorded as such. Prints nothing
about the records (paths and digests only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from datetime import date
from pathlib import Path

import sqlalchemy as sa

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
RUN_DATES = {"SPRG": date(2026, 5, 1), "SENR": date(2026, 5, 1), "STAS": date(2026, 6, 20), "LEAP": date(2026, 6, 20)}


def digests(sis: sa.Engine, record_types: list[str]) -> dict[str, object]:
    from calpads import pipeline
    from calpads.run_scope import RunScope

    root = Path(tempfile.mkdtemp(prefix="calpads-digest-"))
    out: dict[str, object] = {}
    try:
        store = sa.create_engine(f"sqlite:///{root}/store.db")
        pub = root / "pub"
        pub.mkdir()
        for rt in record_types:
            scope = RunScope.from_params(rt, {"academic_year": "2025-2026", "save_history": True},
                                         today=RUN_DATES[rt])
            ctx = pipeline.RunContext(rt, f"calpads_{rt.lower()}", f"digest__{rt}", scope, root / rt, pub)
            try:
                pipeline.extract(ctx, sis)
                pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)
                pipeline.diff(ctx, store)
                pipeline.publish(ctx)
                pipeline.save_history(ctx, store)
            except Exception as exc:  # noqa: BLE001 - the outcome itself is compared
                out[f"{rt} failed"] = type(exc).__name__
        for path in sorted(p for p in pub.rglob("*") if p.is_file()):
            name, data = str(path.relative_to(pub)), path.read_bytes()
            if name.endswith(("manifest.json", ".html", ".json")) and (name.endswith("manifest.json")
                                                                        or "data_docs" in name):
                # this run's temporary folder and clock
                name, data = _timeless(name), _timeless(data.decode().replace(str(root), "<root>")).encode()
            elif "data_docs" in name:
                name = _timeless(name)
            out[name] = hashlib.sha256(data).hexdigest()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


_CLOCK = re.compile(r"\d{8}T\d{6}\.\d{6}Z|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?")


def _timeless(text: str) -> str:
    """Data Docs name and show the time of the validation: the same report of another run differs by it only."""
    return _CLOCK.sub("<time>", text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sis", required=True, help="SIS URL (a missing SQLite file is generated)")
    ap.add_argument("--students", type=int, default=2000)
    ap.add_argument("--record-types", default="SPRG,SENR,STAS,LEAP")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    url = sa.make_url(args.sis)
    sis = sa.create_engine(url)
    if url.drivername.startswith("sqlite") and not Path(url.database).exists():
        from calpads.demo.generator import generate_district

        generate_district(sis, students=args.students, seed=42, dirty=0.01, academic_year="2025-2026",
                          log=lambda m: None)
    result = digests(sis, args.record_types.split(","))
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"{len(result)} entries -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
