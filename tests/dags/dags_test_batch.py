"""Child process of tests.dags.dagrun.run_dags: several `airflow dags test` runs in one interpreter.

Each run goes through Airflow's own CLI parser and `dags test` command (a real DagRun: the DAG file is parsed,
synced to the metadata DB and its tasks run against the in-process Execution API), as `airflow dags test` does.
What one interpreter saves is Airflow's start-up per run: the imports and the in-process Execution API app,
which `dags test` builds for a process's first task (tens of seconds on a loaded machine).

Reads a JSON list of {"env": {...}, "argv": [...]} on stdin. Before each run the process environment is replaced
by that run's env (connections, Variables and [calpads] settings are read from the environment when used), and
a marker line goes to stdout and stderr so that the parent can split the output per run.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

MARKER = "@@calpads-dags-test-run@@"


def main() -> None:
    runs = json.load(sys.stdin)
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    for run in runs:
        os.environ.clear()
        os.environ.update(run["env"])
        for stream in (sys.stdout, sys.stderr):
            print(f"\n{MARKER}", file=stream, flush=True)
        code = 0
        try:
            args = parser.parse_args(run["argv"])
            args.func(args)
        except SystemExit as exc:      # dag_test raises SystemExit("DagRun failed") for a failed run
            code = exc.code if isinstance(exc.code, int) else 1
            if not isinstance(exc.code, int | None):
                print(exc.code, file=sys.stderr)
        except Exception:              # a crash of one run is that run's output, the next run still goes
            traceback.print_exc()
            code = 1
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        print(f"{MARKER} exit={code}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
