"""Run a DAG for real with `airflow dags test` in a subprocess and read back its states."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import airflow_base_env, smtp_conn_uri


@dataclass
class DagRunResult:
    returncode: int
    output: str
    run_id: str | None
    state: str | None
    task_states: dict[str, str]


def project_env(home: Path, *, sis_url: str, store_url: str, publish_root: Path, work_root: Path,
                smtp_port: int | None = None, emails: str = "team@district.example") -> dict[str, str]:
    env = airflow_base_env(home)
    publish_root.mkdir(parents=True, exist_ok=True)   # a mounted share: runs never create it
    env.update({
        "AIRFLOW_CONN_SIS_DB": sis_url,
        "AIRFLOW_CONN_CALPADS_STORE": store_url,
        "AIRFLOW_VAR_CALPADS_PUBLISH_ROOT": f"file://{publish_root}",
        "AIRFLOW_VAR_CALPADS_WORK_ROOT": str(work_root),
        "AIRFLOW_VAR_INTEGRATION_TEAM_EMAILS": emails,
    })
    if smtp_port is not None:
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = smtp_conn_uri(smtp_port)
    return env


def run_dag(env: dict[str, str], dag_id: str, logical_date: str, conf: dict, timeout: int = 600) -> DagRunResult:
    cmd = [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date, "-c", json.dumps(conf)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return _read_back(env, dag_id, logical_date, proc.returncode, proc.stdout + proc.stderr)


# What an interpreter reads once (imports, the metadata DB, cached layouts): the same for every run of a batch.
READ_ONCE_PER_PROCESS = ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER",
                         "AIRFLOW__CORE__PLUGINS_FOLDER", "PYTHONPATH", "CALPADS_LAYOUTS_DIR", "CALPADS_GX_ROOT")


@dataclass
class DagRunRequest:
    """One `airflow dags test <dag_id> <logical_date> -c <conf>` run with its environment."""
    env: dict[str, str]
    dag_id: str
    logical_date: str
    conf: dict


def run_dags(runs: list[DagRunRequest], timeout_each: int = 600) -> list[DagRunResult]:
    """The runs, in order, as `airflow dags test` runs in one Python process (tests/dags/dags_test_batch.py):
    the same DagRuns as run_dag's, without paying Airflow's start-up once per run. The runs may differ in their
    connections, Variables and [calpads] settings, not in READ_ONCE_PER_PROCESS; a run starts whatever the
    previous one's outcome (each result is read back on its own)."""
    from tests.dags.dags_test_batch import MARKER

    for key in READ_ONCE_PER_PROCESS:
        values = {r.env.get(key) for r in runs}
        assert len(values) == 1, f"{key} differs between the runs of a batch ({values}): use run_dag"
    payload = [{"env": {**r.env, "PYTHONUNBUFFERED": "1"},
                "argv": ["dags", "test", r.dag_id, r.logical_date, "-c", json.dumps(r.conf)]} for r in runs]
    proc = subprocess.run([sys.executable, "-m", "tests.dags.dags_test_batch"], input=json.dumps(payload),
                          env=payload[0]["env"], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=timeout_each * len(runs))
    outs = proc.stdout.split(f"\n{MARKER}\n")[1:]
    errs = proc.stderr.split(f"\n{MARKER}\n")[1:]
    results = []
    for i, r in enumerate(runs):
        out = outs[i] if i < len(outs) else ""
        err = errs[i] if i < len(errs) else ""
        code = int(err.rsplit(f"{MARKER} exit=", 1)[1].split()[0]) if f"{MARKER} exit=" in err else None
        if code is None:     # the process died during this run: its whole output explains why
            code, err = proc.returncode or 1, err + proc.stderr[-5000:]
        results.append(_read_back(r.env, r.dag_id, r.logical_date, code, out + err))
    return results


def _read_back(env: dict[str, str], dag_id: str, logical_date: str, returncode: int, output: str) -> DagRunResult:
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    con = sqlite3.connect(db)
    try:
        row = con.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND logical_date LIKE ? ORDER BY id DESC LIMIT 1",
            (dag_id, logical_date[:10] + "%"),
        ).fetchone()
        run_id, state = (row or (None, None))
        tasks = dict(con.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                                 (dag_id, run_id)).fetchall()) if run_id else {}
    finally:
        con.close()
    return DagRunResult(returncode, output, run_id, state, tasks)
