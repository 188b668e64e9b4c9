"""One factory for every CALPADS file DAG: calpads_<record type>.

The same params, gate, history, publication and alerts for every layout that
has a builder (calpads.extracts.registry). Nothing here touches connections,
Variables or data at parse time: tasks resolve them when they run.

Configuration without code changes (Airflow config, e.g. environment variables):
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
  AIRFLOW__CALPADS__LEA_CODE        the <lea> of the SIS asset URIs (calpads.assets), default "district"
Variables (read by tasks): calpads_publish_root, calpads_work_root, integration_team_emails.
Connections: sis_db, calpads_store, smtp_default.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum

DEFAULT_SCHEDULE = "0 2 * * *"
DEFAULT_TZ = "America/Los_Angeles"


def _form_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The UI's trigger form sends an empty text field as null: a string param that may be blank must
    accept null too, or the form keeps its Trigger button disabled (RunScope reads None as blank)."""
    if spec.get("type") == "string" and spec.get("default") == "":
        return {**spec, "type": ["string", "null"]}
    return spec


def _conf(key: str, fallback: str) -> str:
    from airflow.configuration import conf

    return conf.get("calpads", key, fallback=fallback)


UPLOAD_TRANSACTION = ("The `_AU` file(s) (adds/updates; `_AU2`, `_AU3` when a student has several records for "
                      "the same program) and the `_D` file (deletes). The file without suffix holds all records, "
                      "for checking counts only: never upload it.")
UPLOAD_REPLACEMENT = ("The one file of the run: this record type is replacement-processed, so every file replaces "
                      "what CALPADS holds for its scope.")


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


def build_calpads_dag(record_type: str, *, dag_id: str | None = None, schedule: str | None = None):
    from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task
    from airflow.sdk.exceptions import AirflowFailException

    from calpads.assets import file_schedule
    from calpads.layouts import load_layout
    from calpads.run_scope import ScopeError, param_specs
    from calpads.sources.api_sources import sis_api_name
    from calpads_airflow.links import attach_report_link
    from calpads_airflow.notifiers import CalpadsFailureNotifier
    from calpads_airflow.run_notes import annotate_run, gate_finished

    record_type = record_type.upper()
    layout = load_layout(record_type)
    dag_id = dag_id or f"calpads_{record_type.lower()}"
    tz = pendulum.timezone(_conf("timezone", DEFAULT_TZ))
    cron = schedule or _conf(f"schedule_{record_type.lower()}", DEFAULT_SCHEDULE)
    today = datetime.now(tz).date()
    specs = param_specs(today, _conf("default_academic_year", ""))   # the demo district's year on a laptop
    params = {name: Param(**_form_spec(spec)) for name, spec in specs.items()}
    # Where the SIS is read from: sql (the sis_db connection) or a vendor API, whose
    # calls go through a pool per SIS to stay under the vendor's rate limit.
    sis_source = _conf("sis_source", "sql")
    sis_pool = "default_pool" if sis_source == "sql" else sis_api_name(sis_source)

    def work_dir() -> Path:
        from airflow.sdk import Variable

        airflow_home = os.environ.get("AIRFLOW_HOME", str(Path.home() / "airflow"))
        work_root = Variable.get("calpads_work_root", default=f"{airflow_home}/calpads_work")
        run_id = get_current_context()["dag_run"].run_id
        safe_run = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
        return Path(work_root) / dag_id / safe_run

    def context_for(scope_dict: dict[str, Any]):
        from airflow.sdk import ObjectStoragePath, Variable

        from calpads.pipeline import RunContext
        from calpads.run_scope import RunScope

        ctx = get_current_context()
        airflow_home = os.environ.get("AIRFLOW_HOME", str(Path.home() / "airflow"))
        publish_root = Variable.get("calpads_publish_root", default=f"file://{airflow_home}/calpads_out")
        if "://" not in publish_root:
            publish_root = f"file://{os.path.abspath(publish_root)}"
        return RunContext(
            record_type=record_type, dag_id=dag_id, run_id=ctx["dag_run"].run_id,
            scope=RunScope.from_dict(scope_dict), work_dir=work_dir(), publish_root=ObjectStoragePath(publish_root),
        )

    def engine(conn_id: str):
        from calpads_airflow.connections import engine_for

        return engine_for(conn_id)

    @dag(
        dag_id=dag_id,
        dag_display_name=f"CALPADS {record_type} – {layout.title}",
        description=f"CALPADS {record_type} extract: SIS pull, quality gate, history diff, publication",
        # Its own cron, or a fresh nightly SIS pull of the assets it reads (calpads.assets).
        schedule=file_schedule(record_type, CronTriggerTimetable(cron, timezone=tz)),
        start_date=pendulum.datetime(2025, 7, 1, tz=tz),
        catchup=False,
        max_active_runs=1,
        params=params,
        tags=["calpads", record_type],
        owner_links={"integration-team": "mailto:integration-team@district.example"},
        doc_md=_doc(record_type, layout.title, layout.processing),
        default_args={
            "owner": "integration-team",
            "retries": int(_conf("task_retries", "2")),
            "retry_delay": timedelta(seconds=int(_conf("retry_delay_seconds", "120"))),
            "retry_exponential_backoff": True,
            "on_failure_callback": [CalpadsFailureNotifier()],
        },
    )
    def calpads_file_dag():
        def check_scope_against_sis(scope: Any) -> None:
            """Schools and sub-districts must be the district's (SCHOOLS in sis_db), before anything is pulled.
            An unreachable SIS is not a wrong param: the extract task checks again (narrow_schools) and retries."""
            from calpads.sources.sql_sis import narrow_schools, reportable_schools

            try:
                with engine("sis_db").connect() as conn:
                    schools = reportable_schools(conn)
            except Exception as exc:  # a missing connection, a driver error: not a wrong param
                logging.getLogger("calpads.pipeline").warning(
                    "Could not read the SIS's schools to check the run's schools/sub-districts (%s); the extract "
                    "task checks them", type(exc).__name__)
                return
            narrow_schools(schools, scope)   # ScopeError naming the unknown values and listing the known ones

        @task(task_display_name="Check run parameters", retries=0)
        def check_params() -> dict[str, Any]:
            from calpads.run_scope import RunScope

            ctx = get_current_context()
            logical = ctx.get("logical_date") or ctx["dag_run"].run_after
            run_date: date = pendulum.instance(logical).in_timezone(tz).date()
            try:
                scope = RunScope.from_params(record_type, dict(ctx["params"]), today=run_date)
                if sis_source == "sql" and (scope.schools or scope.subdistricts):
                    check_scope_against_sis(scope)
            except ScopeError as exc:
                raise AirflowFailException(f"Run parameters rejected: {exc}") from None
            return scope.to_dict()

        @task(task_display_name="Pull SIS data and build records", pool=sis_pool)
        def extract_records(scope: dict[str, Any]) -> dict[str, Any]:
            from calpads.extracts.registry import ApiSource
            from calpads.pipeline import extract

            ctx = context_for(scope)
            # The staging gate keeps each pull's counts in calpads_store (StagingCheckFailed: our own text).
            staging = {"store_engine": engine("calpads_store"),
                       "count_tolerance": float(_conf("staging_count_tolerance", "0.20"))}
            try:
                if sis_source == "sql":
                    return extract(ctx, engine("sis_db"), **staging)
                from calpads.sources.api_common import MissingSourceData

                conn_id = _conf("sis_conn_id", sis_api_name(sis_source))
                try:
                    return extract(ctx, ApiSource(sis_source, conn_id, ctx.work_dir), **staging)
                except MissingSourceData as exc:   # the source can never provide it: a retry would not help
                    raise AirflowFailException(str(exc)) from exc
            except ScopeError as exc:   # a school or sub-district the SIS does not have: no retry can fix it
                raise AirflowFailException(f"Run parameters rejected: {exc}") from exc

        @task(task_display_name="Quality gate (CALPADS rules)")
        def quality_gate(scope: dict[str, Any], extracted: dict[str, Any]) -> dict[str, Any]:
            from calpads.pipeline import GateFailed, gate

            ctx = context_for(scope)

            try:
                summary = gate(ctx, run_date=ctx.scope.today, error_ceiling=float(_conf("error_ceiling", "0.05")))
            except GateFailed as exc:
                gate_finished(record_type, scope, ctx.state().get("validation"))   # also when stopped
                raise AirflowFailException(str(exc)) from None
            gate_finished(record_type, scope, summary)   # the report button and the log's one-screen summary
            # A log record, not print(): stdout can arrive after the "Post Execute" marker and end up
            # folded away in that group of the UI's log view.
            logging.getLogger("calpads.pipeline").info("Validation report: %s", summary["report"])
            # XCom gets counts only; per-rule detail stays in the work folder and the report.
            return {k: v for k, v in summary.items() if k != "rules"} | {"rules_fired": len(summary.get("rules", {}))}

        @task(task_display_name="Compare with submission history")
        def diff_against_history(scope: dict[str, Any], gated: dict[str, Any]) -> dict[str, Any]:
            from calpads.history.guard import EnrolledDeleteBlocked, MassDeleteBlocked, parse_share
            from calpads.history.ods import OdsFormatError
            from calpads.pipeline import diff

            try:
                return diff(context_for(scope), engine("calpads_store"),
                            max_delete_share=parse_share(_conf("max_delete_share", "0.20")))
            except (MassDeleteBlocked, EnrolledDeleteBlocked, OdsFormatError) as exc:
                # No retry can fix these; the alert names the cause (messages.WHAT_TO_DO_FOR).
                raise AirflowFailException(str(exc)) from exc

        @task(task_display_name="Publish files")
        def publish_files(scope: dict[str, Any], diffed: dict[str, Any]) -> dict[str, Any]:
            from calpads.pipeline import publish

            out = publish(context_for(scope))
            print(f"Published {out['records']} records to {out['folder']}")
            return out

        @task(task_display_name="Save submission history")
        def save_submission_history(scope: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
            from calpads.pipeline import save_history

            return save_history(context_for(scope), engine("calpads_store"))

        @task(task_display_name="Email run summary", trigger_rule="all_done", retries=1)
        def send_run_summary() -> dict[str, Any]:
            # No data inputs: it must run (trigger_rule all_done) even when an upstream task failed.
            import json

            from calpads.alerts.messages import needs_summary_email, summary_email, summary_email_failed
            from calpads_airflow.notifiers import send

            state_file = work_dir() / "state.json"
            state = json.loads(state_file.read_text()) if state_file.exists() else {}
            validation = state.get("validation", {})
            ods = state.get("diff", {}).get("ods_comparison")
            deletes = state.get("diff", {}).get("deletes")
            swept = state.get("swept")
            if not needs_summary_email(validation, ods, deletes, swept):
                return {"sent": False}
            ctx = get_current_context()
            run_id = ctx["dag_run"].run_id
            subject, body = summary_email(dag_id=dag_id, run_id=run_id, validation=validation,
                                          published=state.get("published"), report_link=validation.get("report"),
                                          ods=ods, deletes=deletes, swept=swept)
            try:
                return {"sent": send(subject, body)}
            except Exception as exc:
                # The mail server, not the files: say whether the run's files are ready (published and saved).
                scope = ctx["ti"].xcom_pull(task_ids="check_params") or {}
                pending = bool(scope.get("save_history")) and not state.get("history_saved")
                raise summary_email_failed(state.get("published"), exc, history_pending=pending) from exc

        @task(task_display_name="Run outcome", trigger_rule="all_done", retries=0, on_failure_callback=None)
        def run_outcome() -> None:
            # The summary email runs whatever happened (all_done) and would otherwise make a failed run look
            # successful in the UI: this watcher fails the run when any task failed -- except when only the
            # summary email did: the files are ready, and that task's own error says so.
            ctx = get_current_context()
            run_id = ctx["dag_run"].run_id
            states = ctx["ti"].get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id, {})
            failed = sorted(t for t, st in states.items() if st in ("failed", "upstream_failed") and t != "run_outcome")
            annotate_run(dag_id, record_type, work_dir() / "state.json", states)   # the run note (run_notes.py)
            if failed == ["send_run_summary"]:
                logging.getLogger("calpads.pipeline").warning(
                    "The files are ready; only the summary email failed (see the task Email run summary).")
                return
            if failed:
                _release_submission(ctx)
                raise AirflowFailException(f"A task of this run failed ({', '.join(failed)}): see the failed "
                                           f"task's log and alert email.")

        def _release_submission(ctx: Any) -> None:
            """A failed run gives up its claim on the submission history (taken at its diff)."""
            scope = ctx["ti"].xcom_pull(task_ids="check_params")
            if not scope or not scope.get("save_history"):
                return
            try:
                from calpads.pipeline import release_submission

                if release_submission(context_for(scope), engine("calpads_store")):
                    logging.getLogger("calpads.pipeline").info("Released this run's claim on the history")
            except Exception as exc:   # it expires on its own; the run's failure is what matters here
                from calpads.history.store import LEASE_HOURS

                logging.getLogger("calpads.pipeline").warning(
                    "Could not release this run's claim on the submission history (%s): it expires after "
                    "%s hours", type(exc).__name__, LEASE_HOURS)

        scope = check_params()
        extracted = extract_records(scope)
        gated = attach_report_link(quality_gate(scope, extracted))   # "Validation report" button in the UI
        diffed = diff_against_history(scope, gated)
        published = publish_files(scope, diffed)
        saved = save_submission_history(scope, published)
        summary = send_run_summary()
        [gated, saved] >> summary
        [scope, extracted, gated, diffed, published, saved, summary] >> run_outcome()

    return calpads_file_dag()
