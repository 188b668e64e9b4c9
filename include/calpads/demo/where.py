"""Print where a finished demo run put its files, manifest and validation report."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dag-id", required=True)
    ap.add_argument("--log", help="the airflow dags test log, to find the run id")
    args = ap.parse_args(argv)
    root = os.environ.get("AIRFLOW_VAR_CALPADS_PUBLISH_ROOT", "")
    root_path = Path(root.removeprefix("file://"))
    record_type = args.dag_id.removeprefix("calpads_").upper()
    manifests = sorted(root_path.glob(f"*/{record_type}/*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if args.log and Path(args.log).exists():
        m = re.findall(r"Published \d+ records to (\S+)", Path(args.log).read_text(errors="replace"))
        if m:
            folder = Path(m[-1].removeprefix("file://"))
            manifests = [folder / "manifest.json"] if (folder / "manifest.json").exists() else manifests
    if not manifests:
        print(f"   {args.dag_id}: no manifest found under {root_path}", file=sys.stderr)
        return 1
    manifest_path = manifests[-1]
    manifest = json.loads(manifest_path.read_text())
    folder = manifest_path.parent
    print(f"   files:    {folder}")
    for f in manifest["files"]:
        print(f"             {f['name']:<45} {f['records']:>7} records  sha256 {f['sha256'][:12]}…")
    print(f"   manifest: {manifest_path}")
    v = manifest.get("validation", {})
    print(f"   report:   {folder / 'report' / 'index.html'}  ({v.get('records_checked', '?')} checked, "
          f"{v.get('records_held_back', '?')} held back, {v.get('records_warned', '?')} warnings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
