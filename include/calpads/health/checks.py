"""The guide's "Verifying your integration" checklist as checks (integration_health DAG).

1. "Pull a sample SIS report for students who participated in afterschool programs last month. Can
   you see afterschool attendance data in their SIS records?" -> ``afterschool_days_sampled``
2. "Spot-check source data against SIS data ... If your afterschool platform shows 15 days in
   October, does the SIS show the same 15?" -> ``afterschool_days_sampled`` and ``afterschool_days_all``:
   the platform's export as sent (staged and held-back rows) against the SIS's participation of the
   year, through the reconciliation's comparison (calpads.afterschool.reconcile), kind by kind.
3. "Ask your CALPADS coordinator to run a test LEAP extract ... Are the day counts right?" ->
   ``test_extract_leap`` (non_submission mode, in a temporary folder) and ``leap_vs_sis``: the test
   file's Expanded Learning Program Days per student against the SIS participation table's days.
4. The data flows the guide lists: read enrollment, read attendance, write participation ->
   ``flow_<name>`` (SQL: a SELECT per table, a rolled-back INSERT and UPDATE; API: check_data_flows)
5. Process: each nightly DAG succeeded recently -> ``recent_<dag id>``
Each failing check says what to ask IT, the vendor or the coordinator, in the guide's words, and whose
list the email goes to (``roles``). Only counts and table names appear in results: no student data.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from calpads.afterschool import EXPANDED_LEARNING_PROGRAMS, PARTICIPATION_TABLE
from calpads.afterschool.reconcile import DAY_COUNT_KINDS, KIND_INFO

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
    roles: list[str] = field(default_factory=list)     # who acts when it fails (notifiers.ROLE_VARIABLES)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- 1-2. afterschool days
ASK_GAP = ("Bring this to your IT director and CALPADS coordinator: \"Does our afterschool attendance data currently "
           "flow into the SIS?\" (reconciliation.html of the last afterschool_sync run lists the students.)")


def _kinds_words(rows: pd.DataFrame, unknown: int = 0) -> tuple[str, str, list[str]]:
    """("missing_in_sis 2 (integration), ...", what to do per kind, roles) for the kinds that show."""
    found = {k: int(rows[k].sum()) for k in DAY_COUNT_KINDS if k in rows and int(rows[k].sum())}
    if unknown:
        found["unknown_student"] = unknown
    words = ", ".join(f"{k} {n} ({KIND_INFO[k].category})" for k, n in found.items())
    todo = " ".join(f"{k}: {KIND_INFO[k].what_to_do}" for k in found)
    return words, todo, list(dict.fromkeys(KIND_INFO[k].role for k in found))


def afterschool_days(rows: pd.DataFrame | None, *, run_date: date, unknown_students: int = 0,
                     sample_size: int = 10, seed: int | None = None) -> list[CheckResult]:
    """rows: the reconciliation of the platform's export with the SIS (calpads.afterschool.reconcile.reconcile);
    None when nothing was imported. A student-month differs when any day-count kind shows (missing in the SIS,
    held back at import, removed in the platform, extra in the SIS)."""
    if rows is None or not int(rows["platform_days"].sum()):
        missing = CheckResult("afterschool_days_sampled", "Sampled students: afterschool days in the SIS", False,
                              "No afterschool attendance has been imported from the platform.",
                              "Ask the afterschool platform vendor whether the nightly export runs, and district IT "
                              "whether afterschool_sync can reach it (Variable afterschool_drop_path or connection "
                              "afterschool_api).", ["it", "afterschool"])
        return [missing, CheckResult("afterschool_days_all", "All students: afterschool days agree", False,
                                     "No afterschool attendance has been imported from the platform.", missing.ask,
                                     missing.roles)]
    kinds = list(DAY_COUNT_KINDS)
    first = run_date.replace(day=1)
    last_month = (first - timedelta(days=1)).strftime("%Y-%m")
    on_platform = rows[rows["platform_days"] > 0]
    month = last_month if (on_platform["month"] == last_month).any() else on_platform["month"].max()
    in_month = rows[rows["month"] == month]
    ids = sorted(in_month.loc[in_month["platform_days"] > 0, "student_id"].unique().tolist())
    rng = random.Random(seed if seed is not None else run_date.toordinal())
    sample = set(rng.sample(ids, min(sample_size, len(ids))))
    picked = in_month[in_month["student_id"].isin(sample)]
    differ = picked[picked[kinds].sum(axis=1) > 0]
    words, todo, roles = _kinds_words(picked)
    sampled = CheckResult(
        "afterschool_days_sampled", f"Sampled students ({len(sample)}): afterschool days in {month}, platform vs SIS",
        differ.empty,
        f"{len(sample)} students sampled from those with afterschool days in {month}: platform "
        f"{int(picked['platform_days'].sum())} days ({int(picked['held_back'].sum())} held back at import), SIS "
        f"{int(picked['sis_days'].sum())} days; {len(differ)} student(s) differ" + (f": {words}." if words else "."),
        "" if differ.empty else f"{todo} {ASK_GAP}", [] if differ.empty else roles)
    bad = rows[rows[kinds].sum(axis=1) > 0]
    words, todo, roles = _kinds_words(rows, unknown_students)
    ok = bad.empty and not unknown_students
    everyone = CheckResult(
        "afterschool_days_all", "All students: afterschool days per month, platform vs SIS", ok,
        f"{len(rows)} student-months: platform {int(rows['platform_days'].sum())} days "
        f"({int(rows['held_back'].sum())} held back at import), SIS {int(rows['sis_days'].sum())} days; "
        f"{len(bad)} student-months differ" + (f": {words}." if words else ".")
        + (f" {unknown_students} platform row(s) name a student number the SIS does not know." if unknown_students
           else ""), "" if ok else f"{todo} {ASK_GAP}", [] if ok else roles)
    return [sampled, everyone]


def leap_vs_sis(leap: pd.DataFrame, sis_participation: pd.DataFrame) -> CheckResult:
    """The guide's "test LEAP extract ... Are the day counts right?": the test file's Expanded Learning Program
    Days per student (leap: student_id, elp_days) against the distinct ELO-P/ASES/21CCLC dates of the SIS
    participation table (studentid, participation_date, program; already limited to the year)."""
    title = "Test LEAP extract: Expanded Learning Program Days match the SIS, per student"
    sis = sis_participation[sis_participation["program"].isin(EXPANDED_LEARNING_PROGRAMS)]
    sis_days = sis.assign(sid=pd.to_numeric(sis["studentid"]).astype("int64"),
                          day=sis["participation_date"].astype(str).str[:10]).drop_duplicates(["sid", "day"]) \
        .groupby("sid").size()
    file_days = pd.Series(pd.to_numeric(leap["elp_days"]).astype("int64").to_numpy(),
                          index=pd.to_numeric(leap["student_id"]).astype("int64").to_numpy())
    both = pd.concat([file_days.rename("leap"), sis_days.reindex(file_days.index).rename("sis")], axis=1).fillna(0)
    differ = both[both["leap"] != both["sis"]]
    outside = sis_days[~sis_days.index.isin(file_days.index)]
    ok = differ.empty     # students the file cannot carry are listed in the LEAP run's not_extracted.csv
    detail = (f"The LEAP test file has {len(file_days)} students with {int(file_days.sum())} days; the SIS "
              f"participation table has {int(both['sis'].sum())} expanded-learning days for them. "
              f"{len(differ)} student(s) differ ({int((differ['leap'] > differ['sis']).sum())} with more days in "
              f"LEAP, {int((differ['leap'] < differ['sis']).sum())} with more in the SIS).")
    if len(outside):
        detail += (f" Not compared: {len(outside)} student(s) with {int(outside.sum())} expanded-learning days in the "
                   "SIS are not in the LEAP file (no registration, or no SSID in the SIS: the LEAP run's "
                   "not_extracted.csv lists them).")
    ask = "" if ok else (
        "Ask your CALPADS coordinator and IT director: LEAP counts the afterschool sessions afterschool_sync imported "
        "and checked; the SIS holds what its write-back wrote. Days missing in the SIS: "
        f"{KIND_INFO['missing_in_sis'].what_to_do} Extra SIS days: {KIND_INFO['extra_in_sis'].what_to_do} "
        "reconciliation.html of the last afterschool_sync run lists the students.")
    return CheckResult("leap_vs_sis", title, ok, detail, ask, [] if ok else ["coordinator", "it"])


# --------------------------------------------------------------------------- 3. test extract
def test_extract(record_type: str, sis: Any, store_engine: sa.Engine, *, academic_year: str, run_date: date,
                 error_ceiling: float = 0.05, inspect: Callable[[pd.DataFrame], None] | None = None,
                 lea_code: str | None = None, dag_id: str = "integration_health", sis_conn: str = "sis_db"
                 ) -> CheckResult:
    """extract -> gate -> diff -> publish in non_submission mode, in a temporary folder (nothing saved).
    inspect: called with the records the test file carries, before the folder is removed. lea_code: the LEA the
    SIS must hold (a listed LEA's; calpads.failures.LeaMismatch otherwise), dag_id: the checking DAG's, sis_conn: the
    SIS connection the advice names."""
    from calpads.pipeline import DIFFED, RunContext, diff, extract, gate, publish
    from calpads.run_scope import RunScope

    tmp = Path(tempfile.mkdtemp(prefix="calpads-health-"))
    (tmp / "publish").mkdir(mode=0o700)   # the test extract's own publish root (a run never creates a root)
    stage = "parameters"
    try:
        scope = RunScope.from_params(record_type, {"academic_year": academic_year, "mode": "non_submission"},
                                     today=run_date)
        ctx = RunContext(record_type=record_type, dag_id=dag_id, run_id=f"health_{run_date}",
                         scope=scope, work_dir=tmp / "work", publish_root=tmp / "publish", lea_code=lea_code)
        stage = "extract"
        ex = extract(ctx, sis, store_engine=store_engine)
        stage = "quality gate"
        g = gate(ctx, run_date=run_date, error_ceiling=error_ceiling)
        stage = "history comparison"
        diff(ctx, store_engine)
        stage = "publish"
        pub = publish(ctx)
        if inspect is not None:
            inspect(pd.read_parquet(ctx.path(DIFFED)))
    except Exception as exc:
        from calpads.alerts.messages import SAFE_EXCEPTIONS

        why = str(exc) if type(exc).__name__ in SAFE_EXCEPTIONS else type(exc).__name__
        return CheckResult(f"test_extract_{record_type.lower()}", f"Test {record_type} extract (non_submission)", False,
                           f"The test extract failed at the {stage} step: {why}",
                           "Ask your CALPADS coordinator to run a test extract from the SIS and compare; if the SIS "
                           f"could not be read, ask district IT to check the {sis_conn} connection.",
                           ["coordinator", "it"])
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
                                   f"{', '.join(d.split(' ')[0] for d in denied)}.", ["it"]))
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
    """INSERT a probe row, and UPDATE (the write-back's correction of a changed session), each in a transaction
    that is rolled back: the SIS keeps nothing. The UPDATE matches the probe row only."""
    t = sa.table(table.lower(), *(sa.column(c) for c in ("id", "studentid", "schoolid", "participation_date",
                                                         "minutes", "program", "source_row_hash")))
    probe = {"studentid": -1, "schoolid": -1, "participation_date": "1900-01-01", "minutes": 1, "program": "AR",
             "source_row_hash": "integration-health-probe"}
    statements = {
        "INSERT": t.insert().values(**probe),
        "UPDATE": t.update().where(t.c.studentid == -1, t.c.participation_date == "1900-01-01")
        .values(schoolid=-1, minutes=2, source_row_hash="integration-health-probe"),
    }
    title = f"Data flow: {FLOW_WORDS['write_participation']}"
    denied: list[str] = []
    for verb, stmt in statements.items():
        try:
            with engine.connect() as conn:
                tx = conn.begin()
                try:
                    conn.execute(stmt)
                finally:
                    tx.rollback()
        except sa.exc.DBAPIError as exc:
            reason = _reason(exc)
            if reason == "no such table":
                return CheckResult("flow_write_participation", title, False,
                                   f"The SIS has no {table.upper()} table, so afterschool participation cannot be "
                                   "written back.", "Ask district IT to run the SIS migration (sql/sis/README.md, "
                                   "python -m calpads.afterschool.sis_migrate) and grant the sis_db login INSERT and "
                                   f"UPDATE on {table.upper()}.", ["it"])
            denied.append(f"{verb} ({reason})")
    if denied:
        return CheckResult("flow_write_participation", title, False,
                           f"The pipeline's SIS login ({login}) cannot {' or '.join(denied)} on {table.upper()}: "
                           "the write-back inserts new sessions and updates corrected ones.",
                           f"{ASK_FLOWS} Ask district IT to grant the sis_db login INSERT and UPDATE on "
                           f"{table.upper()}.", ["it"])
    return CheckResult("flow_write_participation", title, True,
                       f"The SIS login ({login}) can insert into and update {table.upper()} (test rows rolled back).")


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
                               f"({f.resource})", f.granted, f.message, ask, [] if f.granted else ["it"]))
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
                                   "the scheduler is running and the DAG is unpaused.", ["it"]))
            continue
        age = now - when
        ok = age <= max_age
        out.append(CheckResult(f"recent_{dag_id}", f"Last successful run of {dag_id}", ok,
                               f"{dag_id} last succeeded {when:%Y-%m-%d %H:%M %Z} ({age.total_seconds() / 3600:.0f} h "
                               "ago).", "" if ok else f"{dag_id} has not succeeded for more than "
                               f"{max_age.total_seconds() / 3600:.0f} hours: read its last failure alert; ask district "
                               "IT whether the Airflow scheduler is running and the DAG is unpaused.",
                               [] if ok else ["it"]))
    return out


def email_roles(results: list[CheckResult]) -> tuple[str, ...]:
    """District IT always gets the health email; the roles of the failing checks too (coordinator, afterschool)."""
    return tuple(dict.fromkeys(["it", *(role for r in results if r.ok is False for role in r.roles)]))


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
