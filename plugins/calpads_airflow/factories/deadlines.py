"""The calpads_deadline_watch DAG: a daily email from N days before each CALPADS certification deadline
(the calendar and readiness rules: calpads.deadlines.watch)."""

from __future__ import annotations

from datetime import date
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from calpads_airflow import runtime
from calpads_airflow.tags import DagTag

DAG_ID = "calpads_deadline_watch"

DOC = """
### CALPADS deadline watch (`calpads_deadline_watch`)

**What it does.** Every morning (06:30 Pacific) reads the submission calendar (Fall 1, Fall 2, EOY 1,
EOY 2: `include/calpads/deadlines/calendar.yaml`, 2025-26 dates from CDE as the cited default, merged
with the district's Variable `calpads_submission_calendar`) and, from `notice_days` (30) days before
each certification deadline, emails the readiness of each file of that window: open errors from the
latest run's manifest (records held back, per rule), pending changes not yet submitted (new, changed
and deleted records), and the failing integration_health checks that concern the file (LEAP is not
ready while its test extract or its day counts against the SIS fail). The email goes to the CALPADS
coordinator (Variable `calpads_coordinator_emails`, default `integration_team_emails`). For a
year whose dates are not published it derives Census Day (first Wednesday of October) and asks, on
Mondays, for the other dates.

**When you get an alert.** A file with *open errors*: fix the listed rules in the SIS and let the
nightly run publish again. *Integration checks failing*: read the latest integration_health email for
what to ask IT, the afterschool staff or the vendor. *Never run*: trigger the file's DAG. *Dates needed*:
put the CDE dates in the Variable `calpads_submission_calendar`.
"""


def watch_date(tz: Any) -> date:
    """The param as_of, else the run date in the district's time zone."""
    as_of = get_current_context()["params"].get("as_of") or ""
    return date.fromisoformat(as_of) if as_of else runtime.run_date(tz)


def check_deadlines(tz: Any) -> dict[str, Any]:
    """The windows due soon and each of their files' readiness; the email when one is due (or dates are needed)."""
    from airflow.sdk import Variable

    from calpads.deadlines import watch as w
    from calpads.run_scope import current_academic_year
    from calpads_airflow.notifiers import send

    today = watch_date(tz)
    cal = w.load_calendar(Variable.get("calpads_submission_calendar", default="") or None)
    current = current_academic_year(today)
    previous = f"{int(current[:4]) - 1}-{current[:4]}"
    soon, unknown = w.due_soon(cal, today, [previous, current])
    unknown = [u for u in unknown if u.academic_year == current]
    from calpads_airflow.leas import served_leas

    out: dict[str, Any] = {"today": today.isoformat(), "due": [f"{x.key} {x.academic_year} {x.deadline}" for x in soon],
                           "dates_needed": [f"{x.key} {x.academic_year}" for x in unknown]}
    for lea in served_leas():   # each LEA's own files, told to its own coordinator
        root = runtime.publish_root(lea)
        health = w.latest_health(root)
        ready = {rt: w.readiness(root, win.academic_year, rt, health) for win in soon for rt in win.files}
        key = f"{lea.code}: " if lea.listed else ""
        out.setdefault("readiness", {}).update({f"{key}{k}": v["status"] for k, v in ready.items()})
        if soon or (unknown and today.weekday() == 0):
            subject, body = w.email(today, soon, unknown, ready)
            subject = f"{subject} ({lea.name}, {lea.code})" if lea.listed else subject
            out.setdefault("sent_to", {})[lea.code or "district"] = send(subject, body, roles=("coordinator",),
                                                                         lea_code=lea.code)
    out["sent"] = any(out.get("sent_to", {}).values())
    return out


def watch_task(tz: Any) -> Any:
    def watch() -> dict[str, Any]:
        return check_deadlines(tz)

    return task(watch, task_display_name="Check deadlines and file readiness")


def build_deadline_dag():
    tz = runtime.timezone()

    @dag(**runtime.nightly_dag(
        DAG_ID, display_name="CALPADS deadline watch",
        description="Daily readiness email before each CALPADS certification deadline",
        cron_key="deadline_watch", default_cron="30 6 * * *", tag=DagTag.DEADLINES, doc_md=DOC, tz=tz,
        params={"as_of": Param("", type="string", pattern=r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$", title="As of",
                               description="YYYY-MM-DD; blank = the run date. For checking the email ahead.")},
    ))
    def calpads_deadline_watch():
        watch_task(tz)()

    return calpads_deadline_watch()
