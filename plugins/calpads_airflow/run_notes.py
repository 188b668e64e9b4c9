"""Runs that say what they did: the file DAG's last task writes the run's Airflow note and the report's UI link.

The note ("READY: 466 records in _AU, _AU2 - 0 deletes - 17 held back by 16 rules - report (SPRG 2025-2026,
submission)", calpads.readiness.run_note) shows on the run's header and the grid's tooltip. Airflow 3.3's Task
SDK cannot set a run's note (its execution API takes a note only when triggering a run), so the task calls the
public REST API: ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}`` with ``{"note": ...}`` (at most 1,000
characters), authenticated with a JWT from ``POST /auth/token`` (Airflow docs, "API authentication").

Connection ``airflow_api`` (HTTP): host = the api-server as the worker reaches it (default: the execution
API's address, ``[core] execution_api_server_url`` without ``/execution/``, else ``[api] base_url``), login and
password of an Airflow user allowed to edit the file DAGs' runs (role User or above; scripts/airflow-init.sh
creates it from the admin login). Without the connection, or when the api-server refuses, the note is skipped
with one warning: a note never fails a run.

The report's UI link: a ``file://`` extra link is dropped by the UI, so the quality gate's "Validation report"
button and the note point at the CALPADS page's copy, ``<base_url>/calpads/files/<year>/<RT>/<run>/report/...``
(``/calpads/lea-<code>/...`` for an LEA of the LEA file; calpads_airflow.ui.app serves the publish root read-only,
behind Airflow's login).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlparse

log = logging.getLogger("calpads.pipeline")
API_CONN_ID = "airflow_api"
DEFAULT_BASE_URL = "http://localhost:8080"
TIMEOUT = 10


def base_url() -> str:
    """The UI's address as a browser (and, by default, a worker) reaches it: ``[api] base_url``."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or DEFAULT_BASE_URL).rstrip("/")


def _api_server() -> str:
    """The api-server as this worker reaches it: where it sends its execution API calls, else the UI's URL."""
    from airflow.configuration import conf

    execution = conf.get("core", "execution_api_server_url", fallback="") or ""
    return execution.rstrip("/").removesuffix("/execution") if execution else base_url()


def ui_url(published_path: str | None, lea_code: str | None = None) -> str | None:
    """The CALPADS page's URL of a file in a run folder (``<root>/<year>/<RT>/<run>/report/index.html``, any
    scheme; ``lea_code``: the listed LEA whose publish folder it is); None for anything else."""
    from calpads.leas import page_files_path

    if not published_path:
        return None
    parts = PurePosixPath(urlparse(str(published_path)).path).parts
    if "report" not in parts[-3:] or len(parts) < 5:
        return None
    at = len(parts) - 1 - parts[::-1].index("report")
    rel = parts[at - 3:]       # <year>/<RT>/<run>/report/...
    return f"{base_url()}/calpads/{page_files_path(lea_code)}/" + "/".join(quote(p, safe="") for p in rel)


def _api_token(session: Any, host: str, login: str, password: str) -> str:
    r = session.post(f"{host}/auth/token", json={"username": login, "password": password}, timeout=TIMEOUT)
    r.raise_for_status()
    return r.json()["access_token"]


def set_run_note(dag_id: str, run_id: str, note: str, conn_id: str = API_CONN_ID) -> bool:
    """PATCH the run's note through the REST API; False (one warning) when it cannot."""
    import requests
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        log.warning("Run note not written: no Airflow connection %r (the api-server's URL and a user that may "
                    "edit this DAG's runs; docs/production.md, 'Run notes')", conn_id)
        return False
    host = (conn.host or _api_server()).rstrip("/")
    if "://" not in host:
        host = f"http://{host}{f':{conn.port}' if conn.port else ''}"
    try:
        with requests.Session() as session:
            token = _api_token(session, host, conn.login or "", conn.password or "")
            r = session.patch(f"{host}/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
                              params={"update_mask": "note"}, json={"note": note}, timeout=TIMEOUT,
                              headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
    except (requests.RequestException, KeyError, ValueError) as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        log.warning("Run note not written: the api-server at %s answered %s", host,
                    status or type(exc).__name__)
        return False
    return True


def annotate_run(dag_id: str, record_type: str, state_file: Path, task_states: dict[str, Any],
                 lea_code: str | None = None) -> str:
    """From the file DAG's last task: the run's note from its state (work folder) and its tasks' states (those
    that failed themselves, not the ones skipped after them), logged and written to the run. Returns the note."""
    try:
        return _annotate(dag_id, record_type, state_file, task_states, lea_code)
    except Exception as exc:   # the note is a convenience: the run's outcome must not depend on it
        log.warning("Run note not written: %s", type(exc).__name__)
        return ""


def _annotate(dag_id: str, record_type: str, state_file: Path, task_states: dict[str, Any],
              lea_code: str | None) -> str:
    from airflow.sdk import get_current_context

    from calpads.readiness import run_note

    ctx = get_current_context()
    run_id = ctx["dag_run"].run_id
    scope = ctx["ti"].xcom_pull(task_ids="check_params") or {}
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    validation = state.get("validation") or {}
    diff = state.get("diff") or {}
    failed = sorted(t for t, st in task_states.items() if st == "failed")
    note = run_note(record_type, str(scope.get("academic_year") or "?"), scope.get("mode"),
                    validation=validation, published=state.get("published"), deletes=diff.get("deleted"),
                    report_url=ui_url(validation.get("report"), lea_code), failed_tasks=failed)
    log.info("Run note: %s", note)
    set_run_note(dag_id, run_id, note)
    return note


def gate_finished(record_type: str, scope: dict[str, Any], validation: dict[str, Any] | None,
                  lea_code: str | None = None) -> None:
    """From the quality gate task, passed or stopped: the report button's URL and the log's one-screen summary
    (calpads.stage_summary), the first lines of the task's own log now that Great Expectations is quiet."""
    from calpads.stage_summary import gate_summary
    from calpads_airflow.links import push_report_url

    validation = validation or {}
    report = validation.get("report")
    push_report_url(report, lea_code)
    if validation.get("records_checked") is None:
        return
    label = f"{record_type} {scope.get('academic_year', '?')}, {scope.get('mode', '?')}"
    log.info("%s", gate_summary(validation, scope=label, report_link=ui_url(report, lea_code) or report))
