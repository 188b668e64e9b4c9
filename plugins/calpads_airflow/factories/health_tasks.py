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
from calpads_airflow.factories.health_config import config_from_airflow, health_dag_ids
from calpads_airflow.factories.lea_tasks import LeaScopedTasks

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


__all__ = ["DAG_ID", "HealthTasks", "config_from_airflow", "health_dag_ids", "last_success_via_task_sdk"]


@dataclass(frozen=True)
class HealthTasks(LeaScopedTasks):
    """What every task of one integration_health DAG shares: its time zone, DAG id and LEA (None: the single LEA and
    today's connections and Variables; a listed LEA: its own SIS, store, publish folder and recipients)."""

    dag_id: str = DAG_ID

    def publish_root(self) -> Any:
        return runtime.publish_root(self.lea)

    # -- helpers ---------------------------------------------------------------------------------
    def context(self) -> tuple[Any, Any, Any]:
        run_id = runtime.current_run_id()
        return run_id, runtime.run_date(self.tz), runtime.work_dir(self.dag_id, run_id)

    @staticmethod
    def academic_year() -> str:
        return get_current_context()["params"]["academic_year"]

    def publish_results(self, run_id: str, today: Any, results: list[Any]) -> None:
        """<publish root>/integration/health.json: the latest checks (counts only), for the deadline watch (a
        listed LEA: under its own publish root, which the watch reads for that LEA)."""
        from calpads.health.published import put_results

        put_results(self.publish_root(), {"run_id": run_id, "date": str(today),
                                             "checks": [r.to_dict() for r in results]})

    @staticmethod
    def save(work: Any, key: str, results: list[Any]) -> list[dict[str, Any]]:
        from calpads.afterschool.reports import write_private

        path = work / "checks.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        state[key] = [r.to_dict() for r in results]
        write_private(path, json.dumps(state, indent=2, default=str))
        return state[key]

    def snapshot(self, work: Any, y0: Any, y1: Any) -> Any:
        """The SIS's year (calpads.afterschool.sis_data); a listed LEA's SIS must hold that LEA's data."""
        from calpads.afterschool.sis_data import read_snapshot
        from calpads.failures import LeaMismatch, check_lea

        try:
            snap = read_snapshot(runtime.sis_reader(work, self.lea), y0, y1)
            check_lea(self.lea_code, snap.lea)
        except (LeaMismatch, runtime.AfterschoolSisUnsupported) as exc:   # no retry can fix the configuration
            raise AirflowFailException(str(exc)) from None
        return snap

    # -- the tasks -------------------------------------------------------------------------------
    def afterschool_days(self) -> list[dict[str, Any]]:
        from calpads.afterschool.stages import compare
        from calpads.afterschool.store import AfterschoolNotImported, AfterschoolStore
        from calpads.health.checks import afterschool_days as check
        from calpads.run_scope import academic_year_bounds

        run_id, today, work = self.context()
        year = self.academic_year()
        y0, y1 = academic_year_bounds(year)
        snap = self.snapshot(work, y0, y1)
        store = AfterschoolStore(self.store())
        try:
            rows, counts = compare(year, store.staged(snap.lea, year), snap, store)
        except AfterschoolNotImported:
            rows, counts = None, {}
        unknown = int((counts.get("unknown_student") or {}).get("days", 0))
        return self.save(work, "afterschool_days", check(rows, run_date=today, unknown_students=unknown,
                                                         sample_size=int(runtime.conf("health_sample_size", "10"))))

    def test_extract(self) -> list[dict[str, Any]]:
        from calpads.extracts.registry import ApiSource
        from calpads.health.checks import leap_vs_sis
        from calpads.health.checks import test_extract as check
        from calpads.run_scope import academic_year_bounds

        run_id, today, work = self.context()
        year = self.academic_year()
        src = runtime.sis_source(self.lea)
        sis = runtime.engine(runtime.sis_db_conn_id(self.lea)) if src == "sql" else \
            ApiSource(src, runtime.api_conn_id(lea=self.lea), work)
        results = []
        for record_type in [t.strip().upper() for t in runtime.conf("health_test_extracts", "LEAP").split(",")
                            if t.strip()]:
            published: list[Any] = []
            results.append(check(record_type, sis, self.store(), academic_year=year,
                                 run_date=today, inspect=published.append, lea_code=self.lea_code,
                                 dag_id=self.dag_id, sis_conn=runtime.api_conn_id(lea=self.lea)
                                 if self.lea is not None else "sis_db"))
            if record_type == "LEAP" and published:
                y0, y1 = academic_year_bounds(year)
                snap = self.snapshot(work, y0, y1)
                records = published[0]
                leap = records.assign(student_id=records["local_record_id"].str.split(".").str[0])
                results.append(leap_vs_sis(leap[["student_id", "elp_days"]], snap.participation))
        return self.save(work, "test_extract", results)

    def data_flows(self) -> list[dict[str, Any]]:
        from calpads.health.checks import flows_api, flows_sql

        run_id, today, work = self.context()
        wanted = ["read_enrollment", "read_attendance", "write_participation"]
        source = runtime.sis_source(self.lea)
        if source == "sql":
            results = flows_sql(runtime.engine(runtime.sis_db_conn_id(self.lea)), wanted)
        else:
            from calpads_airflow.registry import hook_for

            results = flows_api(hook_for(source)(runtime.api_conn_id(lea=self.lea)), wanted)
        return self.save(work, "data_flows", results)

    def recent_runs(self) -> list[dict[str, Any]]:
        from datetime import UTC

        from calpads.health.checks import recent_runs as check

        run_id, today, work = self.context()
        dag_ids = health_dag_ids(self.lea)
        max_age = timedelta(hours=float(runtime.conf("health_max_age_hours", "36")))
        return self.save(work, "recent_runs", check(dag_ids, datetime.now(UTC), last_success_via_task_sdk, max_age))

    def document_flows(self) -> str:
        from calpads.health.dataflows_doc import render
        from calpads.health.published import put_pages

        md, page = render(config_from_airflow(self.lea))
        folder = put_pages(self.publish_root(), self.context()[2], {"data_flows.md": md, "data_flows.html": page})
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
        link = str(self.publish_root() / "integration" / "data_flows.html")
        subject, body = email(results, run_id, link)
        if self.lea is not None and self.lea.listed:   # a person on several LEAs' lists sees which one
            subject = f"{subject} ({self.lea.name}, {self.lea.code})"
        failing = [r.check for r in results if r.ok is False]
        try:
            self.publish_results(run_id, today, results)
            unpublished = None
        except PublishShareError as exc:   # the team still gets the checks; then the task fails, saying why
            unpublished = exc
        roles = email_roles(results)
        sent = send(subject, body, roles=roles, lea_code=self.lea_code)
        if unpublished is not None:
            raise unpublished
        return {"sent": sent, "failing": failing, "roles": list(roles)}

    @staticmethod
    def outcome(summary: dict[str, Any]) -> None:
        # The summary email already told the team; this only turns the run red.
        if summary.get("failing"):
            raise AirflowFailException(f"Integration checks failing: {', '.join(summary['failing'])} "
                                       "(see the health email).")
