"""The tasks of integration_health: each a method running one group of calpads.health.checks.

Each group's results are kept in the run's work folder (checks.json) for the summary email; the summary
task also publishes them (<publish root>/integration/health.json) for the deadline watch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

from calpads_airflow import runtime
from calpads_airflow.registry import flow_words

DAG_ID = "integration_health"
CHECK_GROUPS = ("afterschool_days", "test_extract", "data_flows", "recent_runs")


def last_success_via_task_sdk(dag_id: str) -> datetime | None:
    """The end of the latest successful run of dag_id, asked through the Task SDK (Airflow 3: tasks never
    touch the metadata DB; the supervisor asks the API server)."""
    from datetime import UTC

    from airflow.sdk.execution_time.comms import GetPreviousDagRun
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    resp = SUPERVISOR_COMMS.send(GetPreviousDagRun(dag_id=dag_id, logical_date=datetime.now(UTC) + timedelta(days=1),
                                                   state="success"))
    run = getattr(resp, "dag_run", None)
    if run is None:
        return None
    return run.end_date or run.start_date or run.run_after


def config_from_airflow() -> Any:
    """The running configuration (inside a task), for calpads.health.dataflows_doc.render."""
    from airflow.sdk import BaseHook, Variable

    from calpads.alerts.roles import ROLE_VARIABLES
    from calpads.extracts.registry import record_types
    from calpads.health.dataflows_doc import IntegrationConfig
    from calpads_airflow.notifiers import recipients

    conns: dict[str, str] = {}
    for cid in ("sis_db", "calpads_store", "smtp_default", "afterschool_api", runtime.api_conn_id()):
        try:
            conn: Any = BaseHook.get_connection(cid)
        except Exception:
            continue
        conns[cid] = f"{conn.conn_type or '?'} {conn.host or conn.schema or ''}".strip()
    drop = Variable.get("afterschool_drop_path", default="")
    source = f"file drop {drop}" if drop else ("HTTP afterschool_api" if "afterschool_api" in conns else
                                               f"file drop {runtime.airflow_home()}/afterschool_drop")
    return IntegrationConfig(sis_source=runtime.sis_source(), writeback=runtime.writeback_kind(), connections=conns,
                             publish_root=str(runtime.publish_root()), recipients=recipients(),
                             afterschool_source=source, source_words=flow_words(),
                             record_types=record_types(),
                             role_recipients={r: [a.strip() for a in Variable.get(v, default="").split(",")
                                                  if a.strip()] for r, v in ROLE_VARIABLES.items()})


@dataclass(frozen=True)
class HealthTasks:
    tz: Any
    dag_id: str = DAG_ID

    # -- helpers ---------------------------------------------------------------------------------
    def context(self) -> tuple[Any, Any, Any]:
        run_id = runtime.current_run_id()
        return run_id, runtime.run_date(self.tz), runtime.work_dir(self.dag_id, run_id)

    @staticmethod
    def academic_year() -> str:
        return get_current_context()["params"]["academic_year"]

    @staticmethod
    def publish_results(run_id: str, today: Any, results: list[Any]) -> None:
        """<publish root>/integration/health.json: the latest checks (counts only), for the deadline watch."""
        from calpads.health.published import put_results

        put_results(runtime.publish_root(), {"run_id": run_id, "date": str(today),
                                             "checks": [r.to_dict() for r in results]})

    @staticmethod
    def save(work: Any, key: str, results: list[Any]) -> list[dict[str, Any]]:
        from calpads.afterschool.reports import write_private

        path = work / "checks.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        state[key] = [r.to_dict() for r in results]
        write_private(path, json.dumps(state, indent=2, default=str))
        return state[key]

    # -- the tasks -------------------------------------------------------------------------------
    def afterschool_days(self) -> list[dict[str, Any]]:
        from calpads.afterschool.sis_data import read_snapshot
        from calpads.afterschool.stages import compare
        from calpads.afterschool.store import AfterschoolNotImported, AfterschoolStore
        from calpads.health.checks import afterschool_days as check
        from calpads.run_scope import academic_year_bounds

        run_id, today, work = self.context()
        year = self.academic_year()
        y0, y1 = academic_year_bounds(year)
        snap = read_snapshot(runtime.sis_reader(work), y0, y1)
        store = AfterschoolStore(runtime.engine("calpads_store"))
        try:
            rows, counts = compare(year, store.staged(snap.lea, year), snap, store)
        except AfterschoolNotImported:
            rows, counts = None, {}
        unknown = int((counts.get("unknown_student") or {}).get("days", 0))
        return self.save(work, "afterschool_days", check(rows, run_date=today, unknown_students=unknown,
                                                         sample_size=int(runtime.conf("health_sample_size", "10"))))

    def test_extract(self) -> list[dict[str, Any]]:
        from calpads.afterschool.sis_data import read_snapshot
        from calpads.extracts.registry import ApiSource
        from calpads.health.checks import leap_vs_sis
        from calpads.health.checks import test_extract as check
        from calpads.run_scope import academic_year_bounds

        run_id, today, work = self.context()
        year = self.academic_year()
        src = runtime.sis_source()
        sis = runtime.engine("sis_db") if src == "sql" else ApiSource(src, runtime.api_conn_id(), work)
        results = []
        for record_type in [t.strip().upper() for t in runtime.conf("health_test_extracts", "LEAP").split(",")
                            if t.strip()]:
            published: list[Any] = []
            results.append(check(record_type, sis, runtime.engine("calpads_store"), academic_year=year,
                                 run_date=today, inspect=published.append))
            if record_type == "LEAP" and published:
                y0, y1 = academic_year_bounds(year)
                snap = read_snapshot(runtime.sis_reader(work), y0, y1)
                records = published[0]
                leap = records.assign(student_id=records["local_record_id"].str.split(".").str[0])
                results.append(leap_vs_sis(leap[["student_id", "elp_days"]], snap.participation))
        return self.save(work, "test_extract", results)

    def data_flows(self) -> list[dict[str, Any]]:
        from calpads.health.checks import flows_api, flows_sql

        run_id, today, work = self.context()
        wanted = ["read_enrollment", "read_attendance", "write_participation"]
        if runtime.sis_source() == "sql":
            results = flows_sql(runtime.engine("sis_db"), wanted)
        else:
            from calpads_airflow.registry import hook_for

            results = flows_api(hook_for(runtime.sis_source())(runtime.api_conn_id()), wanted)
        return self.save(work, "data_flows", results)

    def recent_runs(self) -> list[dict[str, Any]]:
        from datetime import UTC

        from calpads.health.checks import recent_runs as check

        run_id, today, work = self.context()
        dag_ids = [d.strip() for d in runtime.conf("health_dags", "calpads_sprg,afterschool_sync").split(",")
                   if d.strip()]
        max_age = timedelta(hours=float(runtime.conf("health_max_age_hours", "36")))
        return self.save(work, "recent_runs", check(dag_ids, datetime.now(UTC), last_success_via_task_sdk, max_age))

    def document_flows(self) -> str:
        from calpads.health.dataflows_doc import render
        from calpads.health.published import put_pages

        md, page = render(config_from_airflow())
        folder = put_pages(runtime.publish_root(), self.context()[2], {"data_flows.md": md, "data_flows.html": page})
        return str(folder / "data_flows.html")

    def email_summary(self) -> dict[str, Any]:
        from calpads.failures import PublishShareError
        from calpads.health.checks import CheckResult, email, email_roles
        from calpads_airflow.notifiers import send

        run_id, today, work = self.context()
        path = work / "checks.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        results = [CheckResult(**r) for group in state.values() for r in group]
        for group in CHECK_GROUPS:
            if group not in state:
                results.append(CheckResult(group, f"Check group {group}", None, "The check itself failed to run "
                                           "(see the task's failure alert).", "Ask district IT to look at the "
                                           "integration_health task log."))
        link = str(runtime.publish_root() / "integration" / "data_flows.html")
        subject, body = email(results, run_id, link)
        failing = [r.check for r in results if r.ok is False]
        try:
            self.publish_results(run_id, today, results)
            unpublished = None
        except PublishShareError as exc:   # the team still gets the checks; then the task fails, saying why
            unpublished = exc
        roles = email_roles(results)
        sent = send(subject, body, roles=roles)
        if unpublished is not None:
            raise unpublished
        return {"sent": sent, "failing": failing, "roles": list(roles)}

    @staticmethod
    def outcome(summary: dict[str, Any]) -> None:
        # The summary email already told the team; this only turns the run red.
        if summary.get("failing"):
            raise AirflowFailException(f"Integration checks failing: {', '.join(summary['failing'])} "
                                       "(see the health email).")
