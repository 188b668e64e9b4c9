"""The calpads_maintenance DAG: deletes old work folders and what killed publications left behind.

A DAG of its own rather than a task in each file DAG: it covers every DAG's work folders (the file
DAGs, sis_nightly_pull, afterschool_sync), it runs when a file DAG is paused, and a failure to delete
never fails a submission run.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from calpads_airflow import runtime
from calpads_airflow.tags import DagTag

DAG_ID = "calpads_maintenance"

DOC = """
### CALPADS maintenance (`calpads_maintenance`)

**What it does.** Every morning (04:30 Pacific, after the nightly runs):
1. deletes the work folders (`<calpads_work_root>/<dag id>/<run id>/`) of runs in which nothing was
   written for `[calpads] work_retention_days` days (default 7; `AIRFLOW__CALPADS__WORK_RETENTION_DAYS`).
   Work folders hold each run's pulled records with students' names, birth dates and SSIDs: they are
   owner-only, and kept only long enough to clear a failed task. A run older than that cannot be
   cleared task by task any more: clear the whole run, or trigger a new one.
2. removes what a killed publication left under the publish root (a hidden `.<run id>.incomplete`
   folder, never visible as a result), and emails the team the folders it removed. The next run of the
   same file does the same; this catches files whose DAG does not run for a while.

**When you get an alert.** *Removed interrupted publication folders*: run again the runs named in the
email if they did not finish. A failed task: the work root or the publish share is not writable: ask
district IT.
"""


def delete_old_work_folders() -> dict[str, Any]:
    from pathlib import Path

    from calpads.maintenance import delete_old_work, parse_retention_days

    days = parse_retention_days(runtime.conf("work_retention_days", ""))
    out = delete_old_work(Path(runtime.work_root()), days)
    return {"deleted": len(out["deleted"]), "kept": out["kept"], "bytes_freed": out["bytes_freed"],
            "retention_days": days}


def sweep_publications() -> dict[str, Any]:
    from calpads.maintenance import sweep_publish_root, swept_email
    from calpads_airflow.leas import served_leas
    from calpads_airflow.notifiers import send

    total, sent = 0, False
    for lea in served_leas():   # each LEA's publish folder; what was swept is told to that LEA's team
        swept = sweep_publish_root(runtime.publish_root(lea))
        if swept:
            total += len(swept)
            sent = send(*swept_email(swept), lea_code=lea.code) or sent
    return {"swept": total, "sent": sent}


def build_maintenance_dag():
    tz = runtime.timezone()

    @dag(**runtime.nightly_dag(
        DAG_ID, display_name="CALPADS maintenance (work folder retention)",
        description="Deletes old run work folders and what interrupted publications left",
        cron_key="maintenance", default_cron="30 4 * * *", tag=DagTag.MAINTENANCE, doc_md=DOC, tz=tz,
    ))
    def calpads_maintenance():
        task(delete_old_work_folders, task_display_name="Delete old work folders")()
        task(sweep_publications, task_display_name="Remove interrupted publications")()

    return calpads_maintenance()
