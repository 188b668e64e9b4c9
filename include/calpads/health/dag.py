"""The integration_health DAG: the guide's "Verifying your integration" checklist, nightly, by email."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pendulum

DAG_ID = "integration_health"

DOC = """
### Integration health (`integration_health`)

**What it does.** Nightly (05:00 Pacific) runs the integration guide's "Verifying your integration"
checklist and emails the result:
1. afterschool days for a sample of students (last month) and for all students agree between the
   afterschool platform's export (the rows afterschool_sync staged and the ones it held back) and the
   SIS's participation of the academic year; each difference is named by kind and classified as an
   integration, data quality or process issue;
2. a test LEAP extract runs (non_submission mode, in a temporary folder: nothing is saved or uploaded)
   and its Expanded Learning Program Days are compared, student by student, with the SIS
   participation table ("Are the day counts right?");
3. the data flows are permitted: read enrollment, read attendance, write participation (SQL: a SELECT
   per table and an INSERT and an UPDATE, both rolled back; PowerSchool API: the plugin's access);
4. each nightly DAG succeeded recently (default: within 36 hours).
It also writes the district's configured data flows to
`<calpads_publish_root>/integration/data_flows.html` (and `.md`), and the checks' results to
`<calpads_publish_root>/integration/health.json` (the deadline watch reads them).

**When a check fails** the email says what was found and what to ask district IT, the SIS or platform
vendor, or the CALPADS coordinator. It goes to district IT (Variable `it_emails`) and to the people the
failing checks concern (`calpads_coordinator_emails`, `afterschool_staff_emails`); each list defaults to
`integration_team_emails`. The run is marked failed (task *Health outcome*) so it shows red.
Configuration: `AIRFLOW__CALPADS__HEALTH_DAGS` (comma-separated DAG ids, default
`calpads_sprg,afterschool_sync`), `AIRFLOW__CALPADS__HEALTH_MAX_AGE_HOURS` (36),
`AIRFLOW__CALPADS__HEALTH_SAMPLE_SIZE` (10), `AIRFLOW__CALPADS__HEALTH_TEST_EXTRACTS` (record types
of the test extracts, default `LEAP`).
"""


def build_health_dag():
    from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task
    from airflow.sdk.exceptions import AirflowFailException

    from calpads.afterschool import runtime
    from calpads.run_scope import current_academic_year
    from calpads_airflow.notifiers import CalpadsFailureNotifier

    tz = pendulum.timezone(runtime.conf("timezone", "America/Los_Angeles"))
    cron = runtime.conf("schedule_integration_health", "0 5 * * *")

    def context() -> tuple[Any, Any, Any]:
        ctx = get_current_context()
        dr = ctx["dag_run"]
        logical = ctx.get("logical_date") or dr.run_after
        return dr.run_id, pendulum.instance(logical).in_timezone(tz).date(), runtime.work_dir(DAG_ID, dr.run_id)

    def publish_results(run_id: str, today: Any, results: list[Any]) -> None:
        """<publish root>/integration/health.json: the latest checks (counts only), for the deadline watch."""
        from calpads.health.published import put_results

        put_results(runtime.publish_root(), {"run_id": run_id, "date": str(today),
                                             "checks": [r.to_dict() for r in results]})

    def save(work: Any, key: str, results: list[Any]) -> list[dict[str, Any]]:
        from calpads.afterschool.reports import write_private

        path = work / "checks.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        state[key] = [r.to_dict() for r in results]
        write_private(path, json.dumps(state, indent=2, default=str))
        return state[key]

    @dag(
        dag_id=DAG_ID,
        dag_display_name="Integration health (Verifying your integration)",
        description="Nightly integration checks: afterschool days in the SIS, test extract, data-flow permissions, "
                    "recent runs",
        schedule=CronTriggerTimetable(cron, timezone=tz),
        start_date=pendulum.datetime(2025, 7, 1, tz=tz),
        catchup=False,
        max_active_runs=1,
        tags=["calpads", "health"],
        doc_md=DOC,
        params={"academic_year": Param(current_academic_year(datetime.now(tz).date()), type="string",
                                       pattern=r"^[0-9]{4}-[0-9]{4}$", title="Academic year",
                                       description="CCYY-CCYY: the year checked.")},
        default_args={"owner": "integration-team", "retries": int(runtime.conf("task_retries", "2")),
                      # [calpads] retry_delay_seconds, as the CALPADS file DAGs (calpads.dag_factory)
                      "retry_delay": timedelta(seconds=int(runtime.conf("retry_delay_seconds", "120"))),
                      "on_failure_callback": [CalpadsFailureNotifier()]},
    )
    def integration_health():
        @task(task_display_name="Afterschool days: platform vs SIS")
        def afterschool_days() -> list[dict[str, Any]]:
            from calpads.afterschool.sis_data import read_snapshot
            from calpads.afterschool.stages import compare
            from calpads.afterschool.store import AfterschoolNotImported, AfterschoolStore
            from calpads.health.checks import afterschool_days as check
            from calpads.run_scope import academic_year_bounds

            run_id, today, work = context()
            year = get_current_context()["params"]["academic_year"]
            y0, y1 = academic_year_bounds(year)
            snap = read_snapshot(runtime.sis_reader(work), y0, y1)
            store = AfterschoolStore(runtime.engine("calpads_store"))
            try:
                rows, counts = compare(year, store.staged(snap.lea, year), snap, store)
            except AfterschoolNotImported:
                rows, counts = None, {}
            unknown = int((counts.get("unknown_student") or {}).get("days", 0))
            return save(work, "afterschool_days", check(rows, run_date=today, unknown_students=unknown,
                                                        sample_size=int(runtime.conf("health_sample_size", "10"))))

        @task(task_display_name="Test LEAP extract (non_submission) vs the SIS")
        def test_extract() -> list[dict[str, Any]]:
            from calpads.afterschool.sis_data import read_snapshot
            from calpads.extracts.registry import ApiSource
            from calpads.health.checks import leap_vs_sis
            from calpads.health.checks import test_extract as check
            from calpads.run_scope import academic_year_bounds

            run_id, today, work = context()
            year = get_current_context()["params"]["academic_year"]
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
            return save(work, "test_extract", results)

        @task(task_display_name="Data flows permitted")
        def data_flows() -> list[dict[str, Any]]:
            from calpads.health.checks import flows_api, flows_sql

            run_id, today, work = context()
            wanted = ["read_enrollment", "read_attendance", "write_participation"]
            if runtime.sis_source() == "sql":
                results = flows_sql(runtime.engine("sis_db"), wanted)
            else:
                from calpads_airflow.hooks import HOOK_FOR_SOURCE

                results = flows_api(HOOK_FOR_SOURCE[runtime.sis_source()](runtime.api_conn_id()), wanted)
            return save(work, "data_flows", results)

        @task(task_display_name="Nightly DAGs ran recently")
        def recent_runs() -> list[dict[str, Any]]:
            from datetime import UTC

            from calpads.health.checks import last_success_via_task_sdk
            from calpads.health.checks import recent_runs as check

            run_id, today, work = context()
            dag_ids = [d.strip() for d in runtime.conf("health_dags", "calpads_sprg,afterschool_sync").split(",")
                       if d.strip()]
            max_age = timedelta(hours=float(runtime.conf("health_max_age_hours", "36")))
            return save(work, "recent_runs", check(dag_ids, datetime.now(UTC), last_success_via_task_sdk, max_age))

        @task(task_display_name="Document the configured data flows")
        def document_flows() -> str:
            from calpads.health.dataflows_doc import config_from_airflow, render
            from calpads.health.published import put_pages

            md, page = render(config_from_airflow())
            folder = put_pages(runtime.publish_root(), context()[2], {"data_flows.md": md, "data_flows.html": page})
            return str(folder / "data_flows.html")

        @task(task_display_name="Email health summary", trigger_rule="all_done", retries=1)
        def email_summary() -> dict[str, Any]:
            from calpads.health.checks import CheckResult, email, email_roles
            from calpads_airflow.notifiers import send

            run_id, today, work = context()
            path = work / "checks.json"
            state = json.loads(path.read_text()) if path.exists() else {}
            results = [CheckResult(**r) for group in state.values() for r in group]
            for group in ("afterschool_days", "test_extract", "data_flows", "recent_runs"):
                if group not in state:
                    results.append(CheckResult(group, f"Check group {group}", None, "The check itself failed to run "
                                               "(see the task's failure alert).", "Ask district IT to look at the "
                                               "integration_health task log."))
            link = str(runtime.publish_root() / "integration" / "data_flows.html")
            subject, body = email(results, run_id, link)
            failing = [r.check for r in results if r.ok is False]
            from calpads.failures import PublishShareError

            try:
                publish_results(run_id, today, results)
                unpublished = None
            except PublishShareError as exc:   # the team still gets the checks; then the task fails, saying why
                unpublished = exc
            roles = email_roles(results)
            sent = send(subject, body, roles=roles)
            if unpublished is not None:
                raise unpublished
            return {"sent": sent, "failing": failing, "roles": list(roles)}

        @task(task_id="run_outcome", task_display_name="Health outcome", retries=0, on_failure_callback=None)
        def outcome(summary: dict[str, Any]) -> None:
            # The summary email already told the team; this only turns the run red.
            if summary.get("failing"):
                raise AirflowFailException(f"Integration checks failing: {', '.join(summary['failing'])} "
                                           "(see the health email).")

        checks = [afterschool_days(), test_extract(), data_flows(), recent_runs(), document_flows()]
        summary = email_summary()
        checks >> summary
        outcome(summary)

    return integration_health()
