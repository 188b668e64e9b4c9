"""Where the CALPADS page reads from, inside the api-server: the publish root (Variable calpads_publish_root),
Airflow's metadata database (the file DAGs' runs, their failed tasks), the submission history (connection
calpads_store) and the submission calendar (calpads.deadlines). Every read is read-only.

With an LEA file (calpads_airflow.leas, docs/leas.md) each read is one LEA's: its publish folder
(LeaConfig.publish_location), its file DAGs (``calpads_<file>__<code>``) and its rows of its store."""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path
from typing import Any

from calpads.leas import LeaConfig
from calpads.readiness import AirflowRun

log = logging.getLogger(__name__)
RUNS_PER_DAG = 20        # recent runs read per file DAG: the latest folders of each year are among them


def publish_root(lea: LeaConfig | None = None) -> Any:
    """The publish root as a path: a local folder (file:// or a plain path) or an object-storage path. ``lea``:
    that LEA's own folder (the same rule as its DAGs' runs, LeaConfig.publish_location)."""
    from airflow.models.variable import Variable

    airflow_home = os.environ.get("AIRFLOW_HOME", str(Path.home() / "airflow"))
    root = Variable.get("calpads_publish_root", default_var=f"file://{airflow_home}/calpads_out")
    if lea is not None:
        root = lea.publish_location(root)
    if root.startswith("file://"):
        return Path(root[len("file://"):])
    if "://" not in root:
        return Path(os.path.abspath(root))
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root)


def leas() -> tuple[LeaConfig, ...]:
    """The LEAs of the LEA file (or Variable), or () for a deployment without one (LeaConfigError when it is
    broken)."""
    from calpads_airflow.leas import directory, server_variable

    found = directory(read_variable=server_variable)
    return found.leas if found else ()


def file_dags(lea: LeaConfig | None = None) -> dict[str, str]:
    """Record type -> DAG id of every CALPADS file DAG (one per record type with a builder); ``lea``: the files
    that LEA submits, as ``calpads_<file>__<code>``."""
    from calpads.extracts.registry import record_types

    if lea is None:
        return {rt: f"calpads_{rt.lower()}" for rt in record_types()}
    return {rt: lea.dag_id(f"calpads_{rt.lower()}") for rt in record_types() if rt in lea.files}


def airflow_runs(dag_id: str) -> dict[str, AirflowRun]:
    """The DAG's recent runs by run-folder name (the run id with "/" replaced, calpads.publish.target)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out: dict[str, AirflowRun] = {}
    with create_session() as session:
        runs = session.execute(select(DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.conf)
                               .where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(RUNS_PER_DAG)).all()
        if not runs:
            return out
        failed: dict[str, list[str]] = {}
        for run_id, task_id in session.execute(
                select(TaskInstance.run_id, TaskInstance.task_id).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id.in_([r[0] for r in runs]),
                    TaskInstance.state == "failed")).all():
            failed.setdefault(run_id, []).append(task_id)
        notes = _notes(session, dag_id, [r[0] for r in runs])
        for run_id, state, start, conf in runs:
            out[run_id.replace("/", "_")] = AirflowRun(run_id, str(state), tuple(sorted(failed.get(run_id, []))),
                                                       notes.get(run_id), start, dict(conf or {}))
    return out


def _notes(session: Any, dag_id: str, run_ids: list[str]) -> dict[str, str]:
    try:
        from airflow.models.dagrun import DagRun, DagRunNote
        from sqlalchemy import select

        rows = session.execute(select(DagRun.run_id, DagRunNote.content).join(DagRunNote, DagRunNote.dag_run_id
                               == DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id.in_(run_ids))).all()
        return {r: c for r, c in rows if c}
    except Exception:   # notes are a convenience on this page
        return {}


def last_saved(record_type: str, academic_year: str, lea: LeaConfig | None = None) -> dict[str, Any] | None:
    """The last run saved as submitted (calpads_store; ``lea``: its own store connection and only its rows), or
    None; {"error": ...} when the store is unreadable."""
    from calpads import readiness

    try:
        from calpads.history.store import HistoryStore
        from calpads_airflow.connections import engine_for

        store = HistoryStore(engine_for(lea.store_conn_id if lea else "calpads_store"))
        return readiness.last_saved(store, record_type, academic_year, lea.code if lea else None)
    except Exception as exc:   # a missing store or table: the page still shows the publish root
        log.warning("Could not read the submission history for %s %s: %s", record_type, academic_year,
                    type(exc).__name__)
        return {"error": f"submission history unreadable ({type(exc).__name__})"}


def next_window(record_type: str, academic_year: str, today: date) -> dict[str, Any] | None:
    """The next CALPADS window of the year that certifies the file and whose deadline is not past."""
    from calpads.deadlines.watch import load_calendar, windows

    try:
        from airflow.models.variable import Variable

        override = Variable.get("calpads_submission_calendar", default_var=None)
    except Exception:
        override = None
    for w in windows(load_calendar(override), academic_year):
        if record_type in w.files and (w.deadline is None or w.deadline >= today):
            return {"name": w.name, "deadline": w.deadline, "days": (w.deadline - today).days if w.deadline else None,
                    "confidence": w.confidence}
    return None
