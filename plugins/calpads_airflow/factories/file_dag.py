"""The factory of every CALPADS file DAG: calpads_<record type> (see calpads_airflow.factories.file_tasks).

The same params, gate, history, publication and alerts for every layout that
has a builder (calpads.extracts.registry). Nothing here touches connections,
Variables or data at parse time: tasks resolve them when they run.

Configuration without code changes (Airflow config, e.g. environment variables; see also
calpads_airflow.runtime):
  AIRFLOW__CALPADS__SCHEDULE_SPRG   cron, default "0 2 * * *"
  AIRFLOW__CALPADS__TIMEZONE        default "America/Los_Angeles"
  AIRFLOW__CALPADS__DEFAULT_ACADEMIC_YEAR  the academic year of scheduled runs and the form's default, e.g.
                                    "2025-2026" for the demo district; default: the current one (July-June)
  AIRFLOW__CALPADS__ERROR_CEILING   share of records in error that fails a run, default 0.05
  AIRFLOW__CALPADS__STAGING_COUNT_TOLERANCE  drop of the SIS pull's students/programs against the last
                                    accepted pull of the same scope that fails the run before build, default 0.20
  AIRFLOW__CALPADS__MAX_DELETE_SHARE  share of the previously submitted records in scope that one run may
                                    delete (more fails the run unless its conf has allow_mass_delete), default 0.20
  AIRFLOW__CALPADS__TASK_RETRIES    retries of a failed task, default 2
  AIRFLOW__CALPADS__RETRY_DELAY_SECONDS  first retry delay (doubles each retry), default 120
  AIRFLOW__CALPADS__SIS_SOURCE      sql (default) | powerschool_api | aeries_api | oneroster
  AIRFLOW__CALPADS__SIS_CONN_ID     the API connection, default sis_powerschool / sis_aeries / sis_oneroster
  AIRFLOW__CALPADS__LEA_CODE        the <lea> of the SIS asset URIs (calpads_airflow.assets), default "district"
Variables (read by tasks): calpads_publish_root, calpads_work_root, integration_team_emails.
Connections: sis_db, calpads_store, smtp_default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from calpads.leas import LeaConfig
from calpads.run_scope import param_specs
from calpads_airflow import runtime
from calpads_airflow.assets import file_schedule
from calpads_airflow.factories.file_tasks import FileDagTasks
from calpads_airflow.links import attach_report_link
from calpads_airflow.tags import dag_tags, lea_tags

DEFAULT_SCHEDULE = "0 2 * * *"


def _form_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The UI's trigger form sends an empty text field as null: a string param that may be blank must
    accept null too, or the form keeps its Trigger button disabled (RunScope reads None as blank)."""
    if spec.get("type") == "string" and spec.get("default") == "":
        return {**spec, "type": ["string", "null"]}
    return spec


def file_params(tz: Any) -> dict[str, Any]:
    """The run params (calpads.run_scope.param_specs) as the UI's trigger form."""
    today = datetime.now(tz).date()
    specs = param_specs(today, runtime.conf("default_academic_year", ""))   # the demo district's year on a laptop
    return {name: Param(**_form_spec(spec)) for name, spec in specs.items()}


UPLOAD_TRANSACTION = ("The `_AU` file(s) (adds/updates; `_AU2`, `_AU3` when a student has several records for "
                      "the same program) and the `_D` file (deletes). The file without suffix holds all records, "
                      "for checking counts only: never upload it.")
UPLOAD_REPLACEMENT = ("The one file of the run: this record type is replacement-processed, so every file replaces "
                      "what CALPADS holds for its scope.")


def _lea_doc(lea: LeaConfig) -> str:
    if not lea.listed:
        return ""
    return (f"\n**LEA {lea.code}: {lea.name}.** This DAG reads only this LEA's SIS (connection `{lea.sis_conn_id}`), "
            f"publishes under its own folder and alerts its own team (the LEA file, docs/leas.md). Where the text "
            f"below says `sis_db`, `calpads_publish_root` or `integration_team_emails`, read this LEA's entry.\n")


def _doc(record_type: str, title: str, processing: str = "transaction") -> str:
    upload = UPLOAD_REPLACEMENT if processing == "replacement" else UPLOAD_TRANSACTION
    return f"""
### CALPADS {record_type} ({title}) extract

**What it does.** Reads the SIS (`sis_db` connection), builds the CALPADS {record_type} records,
checks every record against the CALPADS rules (quality gate), compares them with what was last
submitted (`calpads_store`), and publishes the caret-delimited files, a `manifest.json` and a
validation report under the `calpads_publish_root` Variable:
`<root>/<academic year>/{record_type}/<run id>/`.

**Nightly run** (02:00 Pacific by default): submission mode, history *not* saved. Each morning
the folder of the latest run shows what the next submission would contain and which records break a
rule. **Coordinator's run:** use *Trigger DAG w/ config*, choose the params, and set
*Save as submitted* only on the run whose files you upload to CALPADS.

**Which files to upload.** {upload}

**When you get an alert.** Its *Failing part* line names what failed, and it says what to do.
- *Held back records*: they break an error rule and were not published. The email lists the rules;
  the report (`report/index.html` in the run folder) lists each record by Local Record ID and Local
  Student ID with what to fix in the SIS. Fix them; they go out in a later run.
- *records*: more than the allowed share of records fail the quality gate; nothing was published.
- *delete guard*: the run would delete too many records, or records of students who are still enrolled (a
  key field changed, or a program row was removed); nothing was published. The email and
  `report/deletes.html` list them; check them in the SIS, and set *Allow deletes of enrolled students* (or
  *allow_mass_delete*) only if they are real.
- *run parameters*: a Params value is wrong; trigger again with a corrected one.
- *SIS*: the SIS could not be read: ask district IT to check the database (or API) and its login.
- *history store*: the `calpads_store` database is missing, unreachable or full; nothing was saved.
- *work folder*: the `calpads_work_root` folder is missing, read-only or full on the worker.
- *publish share*: "Publish failed: the publish folder is missing" (a share that is not mounted is never
  created), full or read-only; nothing partial was left.
- *submission history*: another run saving the same file is between its comparison and its save, or
  saved first; nothing was published or saved by this run: run it again later.
- *Save history failed*: files were published but not recorded as submitted; clear the task to retry
  before uploading.
- *Files are ready, summary email failed*: the files are good; only the email failed (check `smtp_default`).
- *Cleaned up after an interrupted publication*: a publish was killed part-way last time; its hidden,
  incomplete folder was removed (it was never visible as a result).

A run folder is complete when it holds `manifest.json`: it appears whole (report, files, manifest) or
not at all. A folder with only `report/` is a run that published nothing.
"""


def _schedule(record_type: str, lea: LeaConfig, tz: Any, cron: str | None) -> Any:
    """Its own cron, or a fresh nightly SIS pull of the assets it reads (calpads.assets): the single LEA's, or a
    listed LEA's own (sis_nightly_pull__<code>, afterschool_sync__<code>). A listed LEA on a vendor API has no
    nightly pull (calpads_airflow.factories.sis_pull.has_sis_pull): its cron only."""
    from airflow.sdk import CronTriggerTimetable

    from calpads_airflow.factories.sis_pull import has_sis_pull

    cron = cron or lea.cron(record_type) or runtime.conf(f"schedule_{record_type.lower()}", DEFAULT_SCHEDULE)
    timetable = CronTriggerTimetable(cron, timezone=tz)
    if not has_sis_pull(lea):
        return timetable
    return file_schedule(record_type, timetable, lea.code if lea.listed else None)


def build_calpads_dag(record_type: str, *, lea: LeaConfig | None = None, dag_id: str | None = None,
                      schedule: str | None = None):
    """``calpads_<file>`` of the single LEA, or ``calpads_<file>__<code>`` of a listed LEA (calpads.leas)."""
    from calpads.layouts import load_layout
    from calpads_airflow.leas import single_lea

    record_type = record_type.upper()
    layout = load_layout(record_type)
    lea = lea or single_lea()
    dag_id = dag_id or lea.dag_id(f"calpads_{record_type.lower()}")
    tz = pendulum.timezone(lea.timezone) if lea.timezone else runtime.timezone()
    t = FileDagTasks(record_type, dag_id, tz, lea)
    for_lea = f" · {lea.name} ({lea.code})" if lea.listed else ""

    @dag(
        dag_id=dag_id,
        dag_display_name=f"CALPADS {record_type} – {layout.title}{for_lea}",
        description=f"CALPADS {record_type} extract{for_lea}: SIS pull, quality gate, history diff, publication",
        schedule=_schedule(record_type, lea, tz, schedule),
        start_date=runtime.start_date(tz),
        catchup=False,
        max_active_runs=1,
        params=file_params(tz),
        tags=dag_tags(record_type, *lea_tags(lea)),
        owner_links=runtime.OWNER_LINKS,
        doc_md=_lea_doc(lea) + _doc(record_type, layout.title, layout.processing),
        default_args=runtime.default_args(exponential_backoff=True, lea=lea),
    )
    def calpads_file_dag():
        scope = task(t.check_params, task_display_name="Check run parameters", retries=0)()
        # Vendor API calls share a pool per SIS, to stay under the vendor's rate limit.
        extracted = task(t.extract_records, task_display_name="Pull SIS data and build records",
                         pool=runtime.sis_pool(lea))(scope)
        gated = task(t.quality_gate, task_display_name="Quality gate (CALPADS rules)")(scope, extracted)
        attach_report_link(gated)   # the "Validation report" button in the UI
        diffed = task(t.diff_against_history, task_display_name="Compare with submission history")(scope, gated)
        published = task(t.publish_files, task_display_name="Publish files")(scope, diffed)
        saved = task(t.save_submission_history, task_display_name="Save submission history")(scope, published)
        summary = task(t.send_run_summary, task_display_name="Email run summary", trigger_rule="all_done",
                       retries=1)()
        outcome = task(t.run_outcome, task_display_name="Run outcome", trigger_rule="all_done", retries=0,
                       on_failure_callback=None)()
        [gated, saved] >> summary
        [scope, extracted, gated, diffed, published, saved, summary] >> outcome

    return calpads_file_dag()
