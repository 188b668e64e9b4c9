"""The afterschool_sync DAG: import -> write back -> reconcile -> attendance recovery -> email."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pendulum

DAG_ID = "afterschool_sync"

DOC = """
### Afterschool data into the SIS and CALPADS (`afterschool_sync`)

**What it does.** Nightly (03:00 Pacific): takes the afterschool platform's export, the attendance
and the expanded-learning registrations (the files in the Variable `afterschool_drop_path`, or the
`afterschool_api` connection), rejects a malformed file whole, checks every row against the afterschool
rules (GX suites `afterschool_attendance`: known student, SSID matches the SIS, real session date in the
year, minutes 1-600, site is a school, no duplicates, valid program; `afterschool_registrations`), stages
the good rows in `calpads_store` and keeps the held-back ones apart (once per export: an export imported
before is not staged again). The LEAP file and STAS 13.24 read these staged rows. Then
1. **writes participation back into the SIS** (`U_AFTERSCHOOL_PARTICIPATION`, or the PowerSchool API):
   validated first (a registered student's summer and intersession expanded-learning days are valid);
   `write_mode` = `setting` (default, and every scheduled run: the Variable `afterschool_write_mode`,
   `dry_run` unless the district set it to `write`), `dry_run` (only shows what would be written) or
   `write`; every write is audited (`afterschool_writeback_audit`: who, when, which run, before/after);
2. **reconciles** the platform's export (staged and held-back rows) with the SIS's participation of the
   year, per student per month; each discrepancy kind is an integration, data quality or process issue;
3. lists the students who can still **recover attendance** (AR) and are at or near chronic absence.
Reports (HTML + CSV, by Local Student ID, owner-only) go to
`<calpads_publish_root>/<academic year>/AFTERSCHOOL/<run id>/`; the summary email (counts only) goes to
the afterschool staff (Variable `afterschool_staff_emails`), and to district IT (`it_emails`) and the
CALPADS coordinator (`calpads_coordinator_emails`) when their kind of discrepancy shows; each list
defaults to `integration_team_emails`.

**When you get an alert.**
- *import failed, file rejected*: the export is not the expected CSV (encoding, columns), or one of its
  two files (attendance, registrations) is missing: the message says what; ask the platform vendor for
  a new export. Nothing from that export was staged.
- *write_back failed, rejected*: too many rows failed validation: nothing was written; see
  `writeback_invalid.csv`. *Refused by the SIS*: the pipeline's login lacks write access to the
  participation table: ask district IT (see the `integration_health` email).
- *reconcile / recovery failed*: the SIS could not be read: ask district IT to check `sis_db`.

The district's configured data flows: `<calpads_publish_root>/integration/data_flows.html`
(written by `integration_health`).
"""


def build_afterschool_dag():
    from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task
    from airflow.sdk.exceptions import AirflowFailException

    from calpads.afterschool import runtime
    from calpads.assets import AFTERSCHOOL, asset
    from calpads.run_scope import current_academic_year
    from calpads_airflow.notifiers import CalpadsFailureNotifier

    tz = pendulum.timezone(runtime.conf("timezone", "America/Los_Angeles"))
    cron = runtime.conf("schedule_afterschool_sync", "0 3 * * *")

    def run_obj(cfg: dict[str, Any]):
        from calpads.afterschool.stages import AfterschoolRun

        ctx = get_current_context()
        dr = ctx["dag_run"]
        logical = ctx.get("logical_date") or dr.run_after
        return AfterschoolRun(dag_id=DAG_ID, run_id=dr.run_id, academic_year=cfg["academic_year"],
                              run_date=pendulum.instance(logical).in_timezone(tz).date(),
                              work_dir=runtime.work_dir(DAG_ID, dr.run_id), publish_root=runtime.publish_root())

    def remember(run: Any, key: str, value: Any) -> None:
        from calpads.afterschool.reports import write_private

        path = run.work_dir / "state.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        state[key] = value
        write_private(path, json.dumps(state, default=str, indent=2))

    @dag(
        dag_id=DAG_ID,
        dag_display_name="Afterschool data into the SIS and CALPADS",
        description="Afterschool platform attendance: import, gate, write-back to the SIS, reconciliation, AR list",
        schedule=CronTriggerTimetable(cron, timezone=tz),
        start_date=pendulum.datetime(2025, 7, 1, tz=tz),
        catchup=False,
        max_active_runs=1,
        tags=["calpads", "afterschool"],
        doc_md=DOC,
        params={
            "academic_year": Param(current_academic_year(datetime.now(tz).date()), type="string",
                                   pattern=r"^[0-9]{4}-[0-9]{4}$", title="Academic year",
                                   description="CCYY-CCYY: the year the export's sessions belong to."),
            "write_mode": Param("setting", type="string", enum=["setting", "dry_run", "write"],
                                title="Write-back mode",
                                description="setting = what the district set for scheduled runs (Variable "
                                "afterschool_write_mode, default dry_run); dry_run = only report what would be "
                                "written to the SIS; write = write it (validated, audited)."),
            "source": Param("auto", type="string", enum=["auto", "file", "http"], title="Export source",
                            description="file = Variable afterschool_drop_path; http = connection afterschool_api; "
                            "auto = the file when configured, else the endpoint."),
            "chronic_threshold": Param(0.10, type="number", minimum=0.01, maximum=0.5,
                                       title="Chronic absence threshold",
                                       description="Share of expected school days absent that counts as chronic "
                                       "(default 0.10 = 10%)."),
        },
        default_args={
            "owner": "integration-team",
            "retries": int(runtime.conf("task_retries", "2")),
            "retry_delay": timedelta(minutes=2),
            "on_failure_callback": [CalpadsFailureNotifier()],
        },
    )
    def afterschool_sync():
        @task(task_display_name="Check run parameters", retries=0)
        def check_params() -> dict[str, Any]:
            from calpads.run_scope import ScopeError, academic_year_bounds

            params = dict(get_current_context()["params"])
            try:
                academic_year_bounds(params["academic_year"])
                if params["write_mode"] == "setting":
                    params["write_mode"] = runtime.scheduled_write_mode()
            except (ScopeError, ValueError) as exc:
                raise AirflowFailException(f"Run parameters rejected: {exc}") from None
            return {k: params[k] for k in ("academic_year", "write_mode", "source", "chronic_threshold")}

        # The staged export is what LEAP and STAS 13.24 read: their DAGs wait for this asset (calpads.assets).
        @task(task_display_name="Import afterschool attendance (gate + stage)", outlets=[asset(AFTERSCHOOL)])
        def import_attendance(cfg: dict[str, Any]) -> dict[str, Any]:
            from calpads.afterschool.ingest import MalformedExport
            from calpads.afterschool.stages import import_export

            run = run_obj(cfg)
            try:
                data, name, ctype = runtime.afterschool_export(cfg["source"])
                registrations = runtime.afterschool_export(cfg["source"], "registrations")
                out = import_export(run, runtime.sis_reader(run.work_dir), runtime.engine("calpads_store"), data,
                                    name, ctype, registrations=registrations)
            except (MalformedExport, FileNotFoundError, PermissionError) as exc:
                remember(run, "errors", {"import": str(exc)})
                raise AirflowFailException(f"Afterschool export rejected: {exc}") from None
            remember(run, "import", out)
            return {k: v for k, v in out.items() if k != "rules"}

        @task(task_display_name="Write participation back to the SIS")
        def write_back(cfg: dict[str, Any], imported: dict[str, Any]) -> dict[str, Any]:
            from calpads.afterschool.stages import writeback_stage
            from calpads.afterschool.store import AfterschoolNotImported
            from calpads.afterschool.writeback import WriteBackError, WriteRejected

            run = run_obj(cfg)
            try:
                out = writeback_stage(run, runtime.sis_reader(run.work_dir), runtime.writeback_target(),
                                      runtime.engine("calpads_store"), cfg["write_mode"],
                                      ceiling=float(runtime.conf("afterschool_error_ceiling", "0.05")))
            except (WriteRejected, WriteBackError, AfterschoolNotImported) as exc:
                remember(run, "errors", {"write_back": str(exc)})
                raise AirflowFailException(str(exc)) from None
            remember(run, "writeback", out)
            return {k: v for k, v in out.items() if k != "rules"}

        @task(task_display_name="Reconcile platform with SIS", trigger_rule="all_done")
        def reconcile(cfg: dict[str, Any]) -> dict[str, Any]:
            from calpads.afterschool.stages import reconcile_stage
            from calpads.afterschool.store import AfterschoolNotImported

            run = run_obj(cfg)
            try:
                out = reconcile_stage(run, runtime.sis_reader(run.work_dir), runtime.engine("calpads_store"))
            except AfterschoolNotImported as exc:
                raise AirflowFailException(str(exc)) from None
            remember(run, "reconcile", out)
            print(f"Reconciliation report: {out['report']}")
            return {k: v for k, v in out.items() if k != "kinds"} | {"kinds": {k: v["days"] for k, v in
                                                                            out["kinds"].items()}}

        @task(task_display_name="Attendance recovery list", trigger_rule="all_done")
        def attendance_recovery(cfg: dict[str, Any]) -> dict[str, Any]:
            from calpads.afterschool.stages import recovery_stage
            from calpads.afterschool.store import AfterschoolNotImported

            run = run_obj(cfg)
            try:
                out = recovery_stage(run, runtime.sis_reader(run.work_dir), runtime.engine("calpads_store"),
                                     threshold=float(cfg["chronic_threshold"]))
            except AfterschoolNotImported as exc:
                raise AirflowFailException(str(exc)) from None
            remember(run, "recovery", out)
            return out

        @task(task_display_name="Email afterschool summary", trigger_rule="all_done", retries=1)
        def email_summary(cfg: dict[str, Any]) -> dict[str, Any]:
            from calpads.afterschool.stages import summary_email, summary_roles
            from calpads_airflow.notifiers import send

            run = run_obj(cfg)
            path = run.work_dir / "state.json"
            state = json.loads(path.read_text()) if path.exists() else {}
            subject, body = summary_email(run, state)
            roles = summary_roles(state)
            return {"sent": send(subject, body, roles=roles), "roles": list(roles)}

        @task(task_display_name="Run outcome", trigger_rule="one_failed", retries=0, on_failure_callback=None)
        def run_outcome() -> None:
            raise AirflowFailException("A task of this run failed: see the failed task's log and alert email.")

        cfg = check_params()
        imported = import_attendance(cfg)
        written = write_back(cfg, imported)
        rec = reconcile(cfg)
        written >> rec
        ar = attendance_recovery(cfg)
        rec >> ar
        summary = email_summary(cfg)
        ar >> summary
        [cfg, imported, written, rec, ar, summary] >> run_outcome()

    return afterschool_sync()
