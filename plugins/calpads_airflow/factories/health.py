"""The integration_health DAG: the guide's "Verifying your integration" checklist, nightly, by email
(task bodies: calpads_airflow.factories.health_tasks)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from calpads.leas import LeaConfig
from calpads.run_scope import current_academic_year
from calpads_airflow import runtime
from calpads_airflow.factories.health_tasks import DAG_ID, HealthTasks
from calpads_airflow.factories.lea_doc import afterschool_words, common_names, lea_doc
from calpads_airflow.tags import DagTag

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


def _lea_doc(lea: LeaConfig) -> str:
    names = common_names(lea)
    names.update({"afterschool_sync": f"`{lea.dag_id('afterschool_sync')}` (its export: "
                                      f"{afterschool_words(lea)})",
                  "AIRFLOW__CALPADS__HEALTH_DAGS": f"the same list, each of this LEA's own DAGs as "
                                                   f"`<id>__{lea.code}` (a file it does not submit left out)"})
    return lea_doc(lea, sis_conn=lea.sis_conn_id, names=names,
                   does="checks only its own store rows and DAG runs, writes health.json and the data-flow pages "
                        "under its own folder (which the deadline watch reads for this LEA) and emails its own "
                        "people")


def build_health_dag(lea: LeaConfig | None = None):
    """``integration_health`` of the single LEA (lea None), or ``integration_health__<code>`` of a listed LEA: its
    own SIS, store rows, publish folder, recipients, time zone, schedule and DAG runs checked."""
    listed = lea if lea is not None and lea.listed else None
    tz = runtime.lea_timezone(listed)
    t = HealthTasks(tz, listed.dag_id(DAG_ID), listed) if listed else HealthTasks(tz)

    @dag(**runtime.nightly_dag(
        DAG_ID, display_name="Integration health (Verifying your integration)",
        description="Nightly integration checks: afterschool days in the SIS, test extract, data-flow permissions, "
                    "recent runs",
        cron_key="integration_health", default_cron="0 5 * * *", tag=DagTag.HEALTH,
        doc_md=(_lea_doc(listed) + DOC) if listed else DOC, tz=tz, lea=listed,
        params={"academic_year": Param(current_academic_year(datetime.now(tz).date()), type="string",
                                       pattern=r"^[0-9]{4}-[0-9]{4}$", title="Academic year",
                                       description="CCYY-CCYY: the year checked.")},
    ))
    def integration_health():
        checks = [
            task(t.afterschool_days, task_display_name="Afterschool days: platform vs SIS")(),
            task(t.test_extract, task_display_name="Test LEAP extract (non_submission) vs the SIS")(),
            task(t.data_flows, task_display_name="Data flows permitted")(),
            task(t.recent_runs, task_display_name="Nightly DAGs ran recently")(),
            task(t.document_flows, task_display_name="Document the configured data flows")(),
        ]
        summary = task(t.email_summary, task_display_name="Email health summary", trigger_rule="all_done",
                       retries=1)()
        checks >> summary
        task(t.outcome, task_id="run_outcome", task_display_name="Health outcome", retries=0,
             on_failure_callback=None)(summary)

    return integration_health()
