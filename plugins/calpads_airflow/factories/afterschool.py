"""The afterschool_sync DAG: import -> write back -> reconcile -> attendance recovery -> email
(task bodies: calpads_airflow.factories.afterschool_tasks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from calpads.assets import AFTERSCHOOL
from calpads.leas import LeaConfig
from calpads.run_scope import current_academic_year
from calpads_airflow import runtime
from calpads_airflow.assets import asset
from calpads_airflow.factories.afterschool_tasks import DAG_ID, AfterschoolTasks
from calpads_airflow.factories.lea_doc import afterschool_words, common_names, lea_doc
from calpads_airflow.tags import DagTag

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


def _lea_doc(lea: LeaConfig) -> str:
    names = common_names(lea)
    names.update({"afterschool_drop_path": afterschool_words(lea),
                  "afterschool_api": f"`{lea.afterschool_conn_id}`" if lea.afterschool_conn_id else
                  "(none: its export is read from its folder)",
                  "afterschool_write_mode": f"`{lea.afterschool_write_mode}` (its entry's afterschool.write_mode)"})
    return lea_doc(lea, sis_conn=lea.sis_conn_id, names=names,
                   does="imports only its own afterschool export, writes participation only into its own SIS, "
                        "keeps its rows in the store under its own code, publishes under its own folder and emails "
                        "its own people")


def afterschool_params(tz: Any, lea: LeaConfig | None = None) -> dict[str, Any]:
    """The trigger form; a listed LEA's descriptions name its own LEA-file settings."""
    listed = lea is not None and lea.listed
    setting = (f"this LEA's afterschool.write_mode in the LEA file (now {lea.afterschool_write_mode})" if listed
               else "what the district set for scheduled runs (Variable afterschool_write_mode, default dry_run)")
    where = (f"file = {afterschool_words(lea).replace('`', '')}; http = "
             f"{'connection ' + lea.afterschool_conn_id if lea.afterschool_conn_id else 'none configured'}"
             if listed else "file = Variable afterschool_drop_path; http = connection afterschool_api")
    return {
        "academic_year": Param(current_academic_year(datetime.now(tz).date()), type="string",
                               pattern=r"^[0-9]{4}-[0-9]{4}$", title="Academic year",
                               description="CCYY-CCYY: the year the export's sessions belong to."),
        "write_mode": Param("setting", type="string", enum=["setting", "dry_run", "write"],
                            title="Write-back mode",
                            description=f"setting = {setting}; dry_run = only report what would be "
                            "written to the SIS; write = write it (validated, audited)."),
        "source": Param("auto", type="string", enum=["auto", "file", "http"], title="Export source",
                        description=f"{where}; auto = the file when configured, else the endpoint."),
        "chronic_threshold": Param(0.10, type="number", minimum=0.01, maximum=0.5,
                                   title="Chronic absence threshold",
                                   description="Share of expected school days absent that counts as chronic "
                                   "(default 0.10 = 10%)."),
    }


def build_afterschool_dag(lea: LeaConfig | None = None):
    """``afterschool_sync`` of the single LEA (lea None), or ``afterschool_sync__<code>`` of a listed LEA: its own
    SIS, store rows, export, write mode, publish folder, recipients, time zone, schedule and asset."""
    listed = lea if lea is not None and lea.listed else None
    tz = runtime.lea_timezone(listed)
    t = AfterschoolTasks(tz, listed.dag_id(DAG_ID), listed) if listed else AfterschoolTasks(tz)

    @dag(**runtime.nightly_dag(
        DAG_ID, display_name="Afterschool data into the SIS and CALPADS",
        description="Afterschool platform attendance: import, gate, write-back to the SIS, reconciliation, AR list",
        cron_key="afterschool_sync", default_cron="0 3 * * *", tag=DagTag.AFTERSCHOOL,
        doc_md=(_lea_doc(listed) + DOC) if listed else DOC, tz=tz, lea=listed,
        params=afterschool_params(tz, listed),
    ))
    def afterschool_sync():
        cfg = task(t.check_params, task_display_name="Check run parameters", retries=0)()
        # The staged export is what LEAP and STAS 13.24 read: their DAGs wait for this asset (calpads.assets).
        imported = task(t.import_attendance, task_display_name="Import afterschool attendance (gate + stage)",
                        outlets=[asset(AFTERSCHOOL, lea=listed.code if listed else None)])(cfg)
        written = task(t.write_back, task_display_name="Write participation back to the SIS")(cfg, imported)
        rec = task(t.reconcile, task_display_name="Reconcile platform with SIS", trigger_rule="all_done")(cfg)
        ar = task(t.attendance_recovery, task_display_name="Attendance recovery list",
                  trigger_rule="all_done")(cfg)
        summary = task(t.email_summary, task_display_name="Email afterschool summary", trigger_rule="all_done",
                       retries=1)(cfg)
        outcome = task(t.run_outcome, task_id="run_outcome", task_display_name="Run outcome",
                       trigger_rule="one_failed", retries=0, on_failure_callback=None)()
        written >> rec >> ar >> summary
        [cfg, imported, written, rec, ar, summary] >> outcome

    return afterschool_sync()
