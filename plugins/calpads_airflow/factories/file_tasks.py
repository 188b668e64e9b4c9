"""The tasks of a calpads_<record type> DAG: each a method calling one stage of calpads.pipeline.

XCom carries the run's scope (a dict) and counts only; records stay in the run's work folder.
Errors that no retry can fix become AirflowFailException (the alert says what to do).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

from calpads.failures import LeaMismatch
from calpads.leas import LeaConfig
from calpads.run_scope import RunScope, ScopeError
from calpads_airflow import runtime

log = logging.getLogger("calpads.pipeline")


@dataclass(frozen=True)
class FileDagTasks:
    """What every task of one file DAG shares: its record type, DAG id, time zone and LEA (its SIS, store,
    publish folder and recipients; calpads.leas)."""

    record_type: str
    dag_id: str
    tz: Any
    lea: LeaConfig

    @property
    def sis_source(self) -> str:
        return self.lea.sis_source

    # -- helpers ---------------------------------------------------------------------------------
    def work_dir(self) -> Path:
        return runtime.work_path(self.dag_id, runtime.current_run_id())

    def context_for(self, scope_dict: dict[str, Any]) -> Any:
        from calpads.pipeline import RunContext

        return RunContext(record_type=self.record_type, dag_id=self.dag_id, run_id=runtime.current_run_id(),
                          scope=RunScope.from_dict(scope_dict), work_dir=self.work_dir(),
                          publish_root=runtime.publish_root(self.lea), lea_code=self.lea.code)

    def store(self) -> Any:
        return runtime.engine(self.lea.store_conn_id)

    def check_scope_against_sis(self, scope: RunScope) -> None:
        """Schools and sub-districts must be the district's (SCHOOLS in sis_db), before anything is pulled.
        An unreachable SIS is not a wrong param: the extract task checks again (narrow_schools) and retries."""
        from calpads.sources.sql_sis import narrow_schools, reportable_schools

        try:
            with runtime.engine(self.lea.sis_conn_id).connect() as conn:
                schools = reportable_schools(conn)
        except Exception as exc:  # a missing connection, a driver error: not a wrong param
            log.warning("Could not read the SIS's schools to check the run's schools/sub-districts (%s); the "
                        "extract task checks them", type(exc).__name__)
            return
        narrow_schools(schools, scope)   # ScopeError naming the unknown values and listing the known ones

    # -- the tasks -------------------------------------------------------------------------------
    def check_params(self) -> dict[str, Any]:
        try:
            scope = RunScope.from_params(self.record_type, dict(get_current_context()["params"]),
                                         today=runtime.run_date(self.tz))
            if self.sis_source == "sql" and (scope.schools or scope.subdistricts):
                self.check_scope_against_sis(scope)
        except ScopeError as exc:
            raise AirflowFailException(f"Run parameters rejected: {exc}") from None
        return scope.to_dict()

    def extract_records(self, scope: dict[str, Any]) -> dict[str, Any]:
        from calpads.extracts.registry import ApiSource
        from calpads.pipeline import extract

        ctx = self.context_for(scope)
        # The staging gate keeps each pull's counts in calpads_store (StagingCheckFailed: our own text).
        staging = {"store_engine": self.store(),
                   "count_tolerance": float(runtime.conf("staging_count_tolerance", "0.20"))}
        try:
            if self.sis_source == "sql":
                return extract(ctx, runtime.engine(self.lea.sis_conn_id), **staging)
            from calpads.sources.api_common import MissingSourceData

            try:
                return extract(ctx, ApiSource(self.sis_source, self.lea.sis_conn_id, ctx.work_dir), **staging)
            except MissingSourceData as exc:   # the source can never provide it: a retry would not help
                raise AirflowFailException(str(exc)) from exc
        except LeaMismatch as exc:   # the LEA's SIS connection reads another LEA: fix the configuration
            raise AirflowFailException(str(exc)) from exc
        except ScopeError as exc:   # a school or sub-district the SIS does not have: no retry can fix it
            raise AirflowFailException(f"Run parameters rejected: {exc}") from exc

    def quality_gate(self, scope: dict[str, Any], extracted: dict[str, Any]) -> dict[str, Any]:
        from calpads.pipeline import GateFailed, gate
        from calpads_airflow.run_notes import gate_finished

        ctx = self.context_for(scope)
        try:
            summary = gate(ctx, run_date=ctx.scope.today,
                           error_ceiling=float(runtime.conf("error_ceiling", "0.05")))
        except GateFailed as exc:
            # also when stopped
            gate_finished(self.record_type, scope, ctx.state().get("validation"), self.lea.code)
            raise AirflowFailException(str(exc)) from None
        # the report button and the log's one-screen summary
        gate_finished(self.record_type, scope, summary, self.lea.code)
        # A log record, not print(): stdout can arrive after the "Post Execute" marker and end up
        # folded away in that group of the UI's log view.
        log.info("Validation report: %s", summary["report"])
        # XCom gets counts only; per-rule detail stays in the work folder and the report.
        return {k: v for k, v in summary.items() if k != "rules"} | {"rules_fired": len(summary.get("rules", {}))}

    def diff_against_history(self, scope: dict[str, Any], gated: dict[str, Any]) -> dict[str, Any]:
        from calpads.history.guard import EnrolledDeleteBlocked, MassDeleteBlocked, parse_share
        from calpads.history.ods import OdsFormatError
        from calpads.pipeline import diff

        try:
            return diff(self.context_for(scope), self.store(),
                        max_delete_share=parse_share(runtime.conf("max_delete_share", "0.20")))
        except (MassDeleteBlocked, EnrolledDeleteBlocked, OdsFormatError) as exc:
            # No retry can fix these; the alert names the cause (messages.WHAT_TO_DO_FOR).
            raise AirflowFailException(str(exc)) from exc

    def publish_files(self, scope: dict[str, Any], diffed: dict[str, Any]) -> dict[str, Any]:
        from calpads.pipeline import publish

        out = publish(self.context_for(scope))
        print(f"Published {out['records']} records to {out['folder']}")
        return out

    def save_submission_history(self, scope: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
        from calpads.pipeline import save_history

        return save_history(self.context_for(scope), self.store())

    def send_run_summary(self) -> dict[str, Any]:
        # No data inputs: it must run (trigger_rule all_done) even when an upstream task failed.
        from calpads.alerts.messages import needs_summary_email, summary_email, summary_email_failed
        from calpads_airflow.notifiers import send

        state_file = self.work_dir() / "state.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        validation = state.get("validation", {})
        ods = state.get("diff", {}).get("ods_comparison")
        deletes = state.get("diff", {}).get("deletes")
        swept = state.get("swept")
        if not needs_summary_email(validation, ods, deletes, swept):
            return {"sent": False}
        subject, body = summary_email(dag_id=self.dag_id, run_id=runtime.current_run_id(), validation=validation,
                                      published=state.get("published"), report_link=validation.get("report"),
                                      ods=ods, deletes=deletes, swept=swept)
        try:
            return {"sent": send(subject, body, lea_code=self.lea.code)}
        except Exception as exc:
            # The mail server, not the files: say whether the run's files are ready (published and saved).
            scope = get_current_context()["ti"].xcom_pull(task_ids="check_params") or {}
            pending = bool(scope.get("save_history")) and not state.get("history_saved")
            raise summary_email_failed(state.get("published"), exc, history_pending=pending) from exc

    def run_outcome(self) -> None:
        # The summary email runs whatever happened (all_done) and would otherwise make a failed run look
        # successful in the UI: this watcher fails the run when any task failed -- except when only the
        # summary email did: the files are ready, and that task's own error says so.
        ctx = get_current_context()
        run_id = ctx["dag_run"].run_id
        states = ctx["ti"].get_task_states(dag_id=self.dag_id, run_ids=[run_id]).get(run_id, {})
        failed = sorted(t for t, st in states.items() if st in ("failed", "upstream_failed") and t != "run_outcome")
        from calpads_airflow.run_notes import annotate_run

        # the run note
        annotate_run(self.dag_id, self.record_type, self.work_dir() / "state.json", states, self.lea.code)
        if failed == ["send_run_summary"]:
            log.warning("The files are ready; only the summary email failed (see the task Email run summary).")
            return
        if failed:
            self.release_submission(ctx)
            raise AirflowFailException(f"A task of this run failed ({', '.join(failed)}): see the failed "
                                       f"task's log and alert email.")

    def release_submission(self, ctx: Any) -> None:
        """A failed run gives up its claim on the submission history (taken at its diff)."""
        scope = ctx["ti"].xcom_pull(task_ids="check_params")
        if not scope or not scope.get("save_history"):
            return
        try:
            from calpads.pipeline import release_submission

            if release_submission(self.context_for(scope), self.store()):
                log.info("Released this run's claim on the history")
        except Exception as exc:   # it expires on its own; the run's failure is what matters here
            from calpads.history.store import LEASE_HOURS

            log.warning("Could not release this run's claim on the submission history (%s): it expires after "
                        "%s hours", type(exc).__name__, LEASE_HOURS)
