"""The guide's "Verifying your integration" checklist as checks (integration_health DAG).

1. "Pull a sample SIS report for students who participated in afterschool programs last month. Can
   you see afterschool attendance data in their SIS records?" -> ``afterschool_days_sampled``
2. "Spot-check source data against SIS data ... If your afterschool platform shows 15 days in
   October, does the SIS show the same 15?" -> ``afterschool_days_sampled`` and ``afterschool_days_all``
3. "Ask your CALPADS coordinator to run a test LEAP extract, even before the submission window opens"
   -> ``test_extract_<record type>`` (SPRG today, non_submission mode, in a temporary folder)
4. The data flows the guide lists: read enrollment, read attendance, write participation ->
   ``flow_<name>`` (SQL: a SELECT per table and a rolled-back INSERT; API: check_data_flows)
5. Process: each nightly DAG succeeded recently -> ``recent_<dag id>``
Each failing check says what to ask IT, the vendor or the coordinator, in the guide's words. Only
counts and table names appear in results: no student data.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from calpads.afterschool import PARTICIPATION_TABLE

ASK_FLOWS = ("Ask your IT director: \"What permissions does our afterschool software have? Can it read enrollment "
             "data? Attendance data? Can it write participation data back? Each data flow may require separate "
             "permissions.\"")
FLOW_TABLES = {
    "read_enrollment": ("STUDENTS", "REENROLLMENTS", "SCHOOLS", "CALENDAR_DAY", "PREFS"),
    "read_attendance": ("ATTENDANCE", "ATTENDANCE_CODE"),
}
FLOW_WORDS = {"read_enrollment": "read enrollment data", "read_attendance": "read regular-day attendance data",
              "write_participation": "write participation data back"}


@dataclass
class CheckResult:
    check: str
    title: str
    ok: bool | None            # None: could not be checked (said in detail)
    detail: str
    ask: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- 1-2. afterschool days
def afterschool_days(platform: pd.DataFrame, sis_participation: pd.DataFrame, *, run_date: date,
                     sample_size: int = 10, seed: int | None = None) -> list[CheckResult]:
    """platform: staged sessions (student_id, session_date); sis_participation: studentid, participation_date."""
    ask_gap = ("Bring this to your IT director and CALPADS coordinator: \"Does our afterschool attendance data "
               "currently flow into the SIS?\" Document the gap: is it an integration issue, a data quality issue, "
               "or a process issue? (reconciliation.html of the last afterschool_sync run lists the students)")
    if platform.empty:
        missing = CheckResult("afterschool_days_sampled", "Sampled students: afterschool days in the SIS", False,
                              "No afterschool attendance has been imported from the platform.",
                              "Ask the afterschool platform vendor whether the nightly export runs, and district IT "
                              "whether afterschool_sync can reach it (Variable afterschool_drop_path or connection "
                              "afterschool_api).")
        return [missing, CheckResult("afterschool_days_all", "All students: afterschool days agree", False,
                                     "No afterschool attendance has been imported from the platform.", missing.ask)]
    p = pd.DataFrame({"student_id": pd.to_numeric(platform["student_id"]).astype("int64"),
                      "day": platform["session_date"].astype(str).str[:10]}).drop_duplicates()
    s = pd.DataFrame({"student_id": pd.to_numeric(sis_participation["studentid"]).astype("int64"),
                      "day": sis_participation["participation_date"].astype(str).str[:10]}).drop_duplicates()
    p["month"], s["month"] = p["day"].str[:7], s["day"].str[:7]
    first = run_date.replace(day=1)
    last_month = (first - timedelta(days=1)).strftime("%Y-%m")
    month = last_month if (p["month"] == last_month).any() else p["month"].max()
    in_month = p[p["month"] == month]
    ids = sorted(in_month["student_id"].unique().tolist())
    rng = random.Random(seed if seed is not None else run_date.toordinal())
    sample = set(rng.sample(ids, min(sample_size, len(ids))))
    pc = in_month[in_month["student_id"].isin(sample)].groupby("student_id").size()
    sc = s[(s["month"] == month) & s["student_id"].isin(sample)].groupby("student_id").size()
    both = pd.concat([pc.rename("platform"), sc.rename("sis")], axis=1).fillna(0).astype(int)
    differ = both[both["platform"] != both["sis"]]
    sampled = CheckResult(
        "afterschool_days_sampled", f"Sampled students ({len(sample)}): afterschool days in {month}, platform vs SIS",
        differ.empty,
        f"{len(sample)} students sampled from those with afterschool days in {month}: platform "
        f"{int(both['platform'].sum())} days, SIS {int(both['sis'].sum())} days; {len(differ)} student(s) differ.",
        "" if differ.empty else ask_gap)
    all_p = p.groupby(["student_id", "month"]).size()
    all_s = s.groupby(["student_id", "month"]).size()
    cmp = pd.concat([all_p.rename("platform"), all_s.rename("sis")], axis=1).fillna(0)
    bad = cmp[cmp["platform"] != cmp["sis"]]
    everyone = CheckResult(
        "afterschool_days_all", "All students: afterschool days per month, platform vs SIS", bad.empty,
        f"{len(cmp)} student-months: platform {int(cmp['platform'].sum())} days, SIS {int(cmp['sis'].sum())} days; "
        f"{len(bad)} student-months differ.", "" if bad.empty else ask_gap)
    return [sampled, everyone]


# --------------------------------------------------------------------------- 3. test extract
def test_extract(record_type: str, sis: Any, store_engine: sa.Engine, *, academic_year: str, run_date: date,
                 error_ceiling: float = 0.05) -> CheckResult:
    """extract -> gate -> diff -> publish in non_submission mode, in a temporary folder (nothing saved)."""
    from calpads.pipeline import RunContext, diff, extract, gate, publish
    from calpads.run_scope import RunScope

    tmp = Path(tempfile.mkdtemp(prefix="calpads-health-"))
    (tmp / "publish").mkdir(mode=0o700)   # the test extract's own publish root (a run never creates a root)
    stage = "parameters"
    try:
        scope = RunScope.from_params(record_type, {"academic_year": academic_year, "mode": "non_submission"},
                                     today=run_date)
        ctx = RunContext(record_type=record_type, dag_id="integration_health", run_id=f"health_{run_date}",
                         scope=scope, work_dir=tmp / "work", publish_root=tmp / "publish")
        stage = "extract"
        ex = extract(ctx, sis)
        stage = "quality gate"
        g = gate(ctx, run_date=run_date, error_ceiling=error_ceiling)
        stage = "history comparison"
        diff(ctx, store_engine)
        stage = "publish"
        pub = publish(ctx)
    except Exception as exc:
        from calpads.alerts.messages import SAFE_EXCEPTIONS

        why = str(exc) if type(exc).__name__ in SAFE_EXCEPTIONS else type(exc).__name__
        return CheckResult(f"test_extract_{record_type.lower()}", f"Test {record_type} extract (non_submission)", False,
                           f"The test extract failed at the {stage} step: {why}",
                           "Ask your CALPADS coordinator to run a test extract from the SIS and compare; if the SIS "
                           "could not be read, ask district IT to check the sis_db connection.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CheckResult(f"test_extract_{record_type.lower()}", f"Test {record_type} extract (non_submission)", True,
                       f"{ex['records_extracted']} records extracted, {g.get('records_held_back', 0)} held back by "
                       f"the quality gate, {pub['records']} in the file (nothing was saved or uploaded).")


# --------------------------------------------------------------------------- 4. data flows
def flows_sql(engine: sa.Engine, flows: Iterable[str], participation_table: str = PARTICIPATION_TABLE
              ) -> list[CheckResult]:
    """SELECT one row of each table a read flow needs; INSERT a row into the participation table and roll back."""
    out: list[CheckResult] = []
    login = engine.url.username or "sis_db"
    for flow in flows:
        if flow == "write_participation":
            out.append(_write_probe(engine, participation_table, login))
            continue
        denied = []
        for table in FLOW_TABLES[flow]:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.select(sa.literal_column("1")).select_from(sa.table(table.lower())).limit(1))
            except sa.exc.DBAPIError as exc:
                denied.append(f"{table} ({_reason(exc)})")
        title = f"Data flow: {FLOW_WORDS[flow]}"
        if denied:
            out.append(CheckResult(f"flow_{flow}", title, False,
                                   f"The pipeline's SIS login ({login}) cannot read {', '.join(denied)}.",
                                   f"{ASK_FLOWS} Ask district IT to grant the sis_db login SELECT on "
                                   f"{', '.join(d.split(' ')[0] for d in denied)}."))
        else:
            out.append(CheckResult(f"flow_{flow}", title, True,
                                   f"The SIS login ({login}) can read {', '.join(FLOW_TABLES[flow])}."))
    return out


def _reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).lower() if exc.orig is not None else ""
    if "permission denied" in text or "denied" in text:
        return "permission denied"
    if "does not exist" in text or "no such table" in text:
        return "no such table"
    return type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__


def _write_probe(engine: sa.Engine, table: str, login: str) -> CheckResult:
    t = sa.table(table.lower(), *(sa.column(c) for c in ("studentid", "schoolid", "participation_date", "minutes",
                                                         "program", "source_row_hash")))
    title = f"Data flow: {FLOW_WORDS['write_participation']}"
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                conn.execute(t.insert().values(studentid=-1, schoolid=-1, participation_date="1900-01-01", minutes=1,
                                               program="AR", source_row_hash="integration-health-probe"))
            finally:
                tx.rollback()
    except sa.exc.DBAPIError as exc:
        reason = _reason(exc)
        if reason == "no such table":
            return CheckResult("flow_write_participation", title, False,
                               f"The SIS has no {table.upper()} table, so afterschool participation cannot be written "
                               "back.", "Ask district IT to run the SIS migration (sql/sis/README.md, "
                               "python -m calpads.afterschool.sis_migrate) and grant the sis_db login INSERT and "
                               f"UPDATE on {table.upper()}.")
        return CheckResult("flow_write_participation", title, False,
                           f"The pipeline's SIS login ({login}) cannot insert into {table.upper()} ({reason}).",
                           f"{ASK_FLOWS} Ask district IT to grant the sis_db login INSERT and UPDATE on "
                           f"{table.upper()}.")
    return CheckResult("flow_write_participation", title, True,
                       f"The SIS login ({login}) can insert into {table.upper()} (test row rolled back).")


def flows_api(hook: Any, flows: Iterable[str], participation_table: str = PARTICIPATION_TABLE) -> list[CheckResult]:
    from calpads.sources.api_common import check_data_flows

    client = hook.get_client() if hasattr(hook, "get_client") else hook
    settings = getattr(client, "settings", None)
    if settings is not None and hasattr(settings, "participation_table"):
        # the write-back writes this table, whatever the connection's participation_table extra says
        settings.participation_table = participation_table.upper()
    try:
        found = check_data_flows(client, list(flows))
    finally:
        if hasattr(client, "close"):
            client.close()
    out: list[CheckResult] = []
    for f in found:
        ask = "" if f.granted else f"{ASK_FLOWS} {f.message}. If the plugin is the vendor's, ask the vendor too."
        resource_id = re.sub(r"[^a-z0-9]+", "_", f.resource.lower()).strip("_")   # "Student Data" -> student_data
        out.append(CheckResult(f"flow_{f.flow}_{resource_id}", f"Data flow: {FLOW_WORDS.get(f.flow, f.flow)} "
                               f"({f.resource})", f.granted, f.message, ask))
    return out


# --------------------------------------------------------------------------- 5. recent runs
def recent_runs(dag_ids: Iterable[str], now: datetime, last_success: Callable[[str], datetime | None],
                max_age: timedelta = timedelta(hours=36)) -> list[CheckResult]:
    out = []
    for dag_id in dag_ids:
        try:
            when = last_success(dag_id)
        except Exception as exc:   # the lookup itself failed: say so, do not guess
            out.append(CheckResult(f"recent_{dag_id}", f"Last successful run of {dag_id}", None,
                                   f"Could not look up the runs of {dag_id} ({type(exc).__name__}).",
                                   "Ask district IT whether the Airflow API server is up."))
            continue
        if when is None:
            out.append(CheckResult(f"recent_{dag_id}", f"Last successful run of {dag_id}", False,
                                   f"{dag_id} has never finished successfully.",
                                   f"Open {dag_id} in Airflow: read the last failure alert; ask district IT whether "
                                   "the scheduler is running and the DAG is unpaused."))
            continue
        age = now - when
        ok = age <= max_age
        out.append(CheckResult(f"recent_{dag_id}", f"Last successful run of {dag_id}", ok,
                               f"{dag_id} last succeeded {when:%Y-%m-%d %H:%M %Z} ({age.total_seconds() / 3600:.0f} h "
                               "ago).", "" if ok else f"{dag_id} has not succeeded for more than "
                               f"{max_age.total_seconds() / 3600:.0f} hours: read its last failure alert; ask district "
                               "IT whether the Airflow scheduler is running and the DAG is unpaused."))
    return out


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


def email(results: list[CheckResult], run_id: str, doc_link: str | None = None) -> tuple[str, str]:
    import html

    failed = [r for r in results if r.ok is False]
    unknown = [r for r in results if r.ok is None]
    subject = (f"[CALPADS] integration health: {len(failed)} check(s) failing" if failed else
               "[CALPADS] integration health: all checks pass") + f" ({run_id})"
    rows = "".join(
        f"<tr><td>{'PASS' if r.ok else 'FAIL' if r.ok is False else 'UNKNOWN'}</td><td>{html.escape(r.title)}</td>"
        f"<td>{html.escape(r.detail)}</td><td>{html.escape(r.ask)}</td></tr>" for r in results)
    body = (f"<p>{len(results) - len(failed) - len(unknown)} of {len(results)} integration checks pass"
            f"{f', {len(unknown)} could not be checked' if unknown else ''}.</p>"
            "<table border='1' cellpadding='4' cellspacing='0'><tr><th>Result</th><th>Check</th><th>What was found</th>"
            f"<th>What to ask (IT, vendor, CALPADS coordinator)</th></tr>{rows}</table>"
            + (f"<p>The district's configured data flows: {html.escape(doc_link)}</p>" if doc_link else ""))
    return subject, body
