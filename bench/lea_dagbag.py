"""How long the LEA DAG files take to parse with many LEAs (docs/leas.md, "How many LEAs").

    .venv/bin/python bench/lea_dagbag.py --leas 1000                # writes the LEA file, times shard 0 and all
    .venv/bin/python bench/lea_dagbag.py --leas 1000 --shard 3      # one shard only

Writes a generated LEA file (``--leas`` SQL LEAs, each submitting the four files, codes 9000000..), then in fresh
processes (as Airflow's DAG processor parses a file) loads a DagBag of one shard file (``dags/calpads_leas_NN.py``)
and of the whole DAG folder, and prints per process: the wall time of the process (interpreter, imports, parse),
the DagBag load's wall and CPU time, DagBag's own time per file (what ``[core] dagbag_import_timeout`` limits,
30 s by default) and the DAGs found. On a shared machine the CPU time is the steadier figure.
Nothing is written to a metadata database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_CODE = 9_000_000

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1, c1 = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
t2, c2 = time.perf_counter(), time.process_time()
def seconds(d):
    return round(d.total_seconds() if hasattr(d, "total_seconds") else float(d), 2)
name = sys.argv[1].rsplit("/", 1)[-1]
files = {(s.file.rsplit("/", 1)[-1] if s.file != "." else name): [seconds(s.duration), s.dag_num]
         for s in bag.dagbag_stats}
print(json.dumps({"airflow_import_s": round(t1 - t0, 2), "dagbag_s": round(t2 - t1, 2),
                  "dagbag_cpu_s": round(c2 - c1, 2), "dags": len(bag.dags),
                  "import_errors": len(bag.import_errors), "files": files}))
"""


def write_lea_file(path: Path, n: int) -> None:
    lines = ["defaults:", "  timezone: America/Los_Angeles", "leas:"]
    for i in range(n):
        code = FIRST_CODE + i
        lines += [f'  - code: "{code}"', f"    name: Generated LEA {i + 1}",
                  f"    sis: {{source: sql, conn_id: sis_db_{code}}}",
                  f"    emails: {{team: [calpads-{code}@lea.example]}}"]
    path.write_text("\n".join(lines) + "\n")


def load(target: Path, lea_file: Path) -> dict:
    env = {**os.environ, "AIRFLOW__CALPADS__LEAS_FILE": str(lea_file), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": str(ROOT / "plugins"), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "GX_ANALYTICS_ENABLED": "false"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(target)], env=env, capture_output=True, text=True,
                          timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = round(wall, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leas", type=int, default=1000)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--shard-only", action="store_true", help="time the one shard file, not the whole folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lea_file = Path(tmp) / "leas.yaml"
        write_lea_file(lea_file, args.leas)
        shard = load(ROOT / "dags" / f"calpads_leas_{args.shard:02d}.py", lea_file)
        print(json.dumps({"leas": args.leas, "what": f"calpads_leas_{args.shard:02d}.py", **shard}))
        if not args.shard_only:
            whole = load(ROOT / "dags", lea_file)
            slowest = max(whole["files"].items(), key=lambda kv: kv[1][0])
            print(json.dumps({"leas": args.leas, "what": "dags/ (every file)", "slowest_file": slowest,
                              **{k: v for k, v in whole.items()}}))


if __name__ == "__main__":
    main()
