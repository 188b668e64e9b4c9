"""The stages of the nightly afterschool_sync run, importable and testable without a scheduler:

    import (parse -> gate -> stage) -> write back (dry_run | write) -> reconcile -> recovery list

Every stage after the import reads the import's staged rows through ``AfterschoolStore.staged`` (the one
reader of afterschool data, which LEAP and STAS 13.24 use too).

Each stage reads the SIS afresh through a reader (SQL or PowerSchool API), writes its report files
owner-only into the run's work folder, copies them to the publish root
(``<root>/<academic year>/AFTERSCHOOL/<run id>/``) and returns a small JSON-able summary (counts
only) for XCom and the email.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from calpads import templates
from calpads.afterschool import ingest, reports
from calpads.afterschool.gate import run_afterschool_gate, run_registration_gate
from calpads.afterschool.reconcile import KINDS, by_category, explained, reconcile, summary
from calpads.afterschool.recovery import CHRONIC_THRESHOLD, recovered_days, recovery_candidates
from calpads.afterschool.sis_data import PowerSchoolReader, SisSnapshot, SqlReader, read_snapshot
from calpads.afterschool.store import AfterschoolStore, Staged
from calpads.run_scope import academic_year_bounds

log = logging.getLogger(__name__)
RECORD_FOLDER = "AFTERSCHOOL"


@dataclass
class AfterschoolRun:
    dag_id: str
    run_id: str
    academic_year: str
    run_date: date
    work_dir: Path
    publish_root: Any            # ObjectStoragePath or Path
    lea_code: str | None = None  # the LEA this run is configured for: another LEA's SIS is refused (LeaMismatch)

    @property
    def year_start(self) -> date:
        return academic_year_bounds(self.academic_year)[0]

    @property
    def last_day(self) -> date:
        """Sessions up to the run date (and never past June 30) are real."""
        return min(academic_year_bounds(self.academic_year)[1], self.run_date)

    @property
    def report_dir(self) -> Path:
        return self.work_dir / "report"

    @property
    def run_folder(self) -> Any:
        return self.publish_root / self.academic_year / RECORD_FOLDER / self.run_id.replace("/", "_")

    def snapshot(self, reader: SqlReader | PowerSchoolReader) -> SisSnapshot:
        """The SIS's year; with lea_code set, LeaMismatch when the SIS's district number is another LEA's (before
        anything is staged, written or reported)."""
        from calpads.failures import check_lea

        snap = read_snapshot(reader, self.year_start, academic_year_bounds(self.academic_year)[1])
        check_lea(self.lea_code, snap.lea)
        return snap

    def publish(self) -> str:
        reports.publish_folder(self.report_dir, self.publish_root, self.run_folder)
        return str(self.run_folder)


def _timed(out: dict[str, Any], t0: float) -> dict[str, Any]:
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


# --------------------------------------------------------------------------- 1. import
def import_export(run: AfterschoolRun, reader: SqlReader | PowerSchoolReader, store_engine: sa.Engine, data: bytes,
                  source: str, content_type: str = "",
                  registrations: tuple[bytes, str, str] | None = None) -> dict[str, Any]:
    """Parse (each file whole or nothing: ingest.MalformedExport), gate, stage (once per checksum).
    registrations: (bytes, source, content type) of the registrations file; None = none sent."""
    t0 = time.perf_counter()
    export = ingest.parse(data, source, content_type)
    regs = ingest.parse(registrations[0], registrations[1], registrations[2], kind="registrations") \
        if registrations is not None else None
    checksum = export.checksum if regs is None else ingest.checksum(f"{export.checksum}:{regs.checksum}".encode())
    snap = run.snapshot(reader)
    store = AfterschoolStore(store_engine)
    seen = store.find_import(snap.lea, checksum)
    if seen is not None:
        log.info("Export %s (sha256 %s...) was imported by run %s: nothing staged", source, checksum[:12],
                 seen["run_id"])
        return _timed({"status": "already_imported", "import_id": int(seen["id"]), "source": source,
                       "rows": int(seen["rows_total"]), "accepted": int(seen["rows_accepted"]),
                       "held_back": int(seen["rows_held"]), "rules": json.loads(seen["summary"]).get("rules", {}),
                       "reporting_lea": snap.lea}, t0)
    result = run_afterschool_gate(export.rows, snap, year_start=run.year_start, last_day=run.last_day)
    reg_result = run_registration_gate(regs.rows, snap, year_end=academic_year_bounds(run.academic_year)[1]) \
        if regs is not None else None
    held = [result.held_back.assign(file="attendance", day=result.held_back["session_date"])]
    if reg_result is not None:
        held.append(reg_result.held_back.assign(file="registrations", day=reg_result.held_back["registration_date"],
                                                school_code=None, minutes=None))
    held_rows = pd.concat(held, ignore_index=True)[["file", "line", "student_number", "school_code", "day", "minutes",
                                                    "program", "rule_ids"]]
    summary = dict(result.summary)
    if reg_result is not None:
        summary["rules"] = {**summary["rules"], **reg_result.summary["rules"]}
        summary["registrations"] = {k: reg_result.summary[k] for k in ("rows", "accepted", "held_back")}
    import_id, staged = store.stage(lea=snap.lea, academic_year=run.academic_year, checksum=checksum,
                                    source=source, run_id=run.run_id, rows_total=len(export.rows),
                                    accepted=result.accepted, held=len(result.held_back), summary=summary,
                                    accepted_registrations=None if reg_result is None else reg_result.accepted,
                                    held_rows=held_rows)
    cols = ["line", "local_student_id", "school_code", "rule_id", "severity", "column", "value", "rule_text", "fix"]
    findings = result.findings[cols]
    reports.write_frame(run.report_dir, "import_held_back.csv", findings)
    reg_findings = reg_result.findings[[c for c in cols if c != "school_code"]] if reg_result is not None else None
    if reg_findings is not None:
        reports.write_frame(run.report_dir, "registrations_held_back.csv", reg_findings)
    rules = pd.DataFrame([{"rule": k, **v} for k, v in summary["rules"].items()])
    reports.write_private(run.report_dir / "import.html", reports.page(
        "Afterschool attendance import", "import_intro.html",
        [("Rules broken", reports.table(rules) if len(rules) else None),
         ("Held-back attendance rows (by line of the export and Local Student ID)", reports.table(findings)),
         *([("Held-back registrations (by line and Local Student ID)", reports.table(reg_findings))]
           if reg_findings is not None else [])],
        source=source, gate=result.summary,
        registrations={"source": registrations[1], **summary["registrations"]}
        if registrations is not None and reg_result is not None else None))
    folder = run.publish()
    out = {"status": "staged" if staged else "already_imported", "import_id": import_id, "source": source,
           **{k: result.summary[k] for k in ("rows", "accepted", "held_back")}, "rules": summary["rules"],
           "reporting_lea": snap.lea, "report": f"{folder}/import.html"}
    if reg_result is not None:
        out["registrations"] = summary["registrations"]
    return _timed(out, t0)


def held_attendance(staged: Staged, snap: SisSnapshot) -> tuple[pd.DataFrame, int]:
    """The held-back attendance rows of students the SIS knows, dated inside the year (student_id, session_date,
    program), and how many held-back rows name a student number the SIS does not know."""
    rows = staged.held[staged.held["file"] == "attendance"]
    stu = snap.students.dropna(subset=["student_number"]).drop_duplicates("student_number")
    ids = rows["student_number"].map(dict(zip(stu["student_number"], stu["student_id"], strict=True)))
    unknown = int((rows["student_number"].notna() & ids.isna()).sum())
    known = rows.assign(student_id=ids, session_date=rows["day"])[ids.notna()]
    day = pd.to_datetime(known["session_date"], format="%Y-%m-%d", errors="coerce")
    y0, y1 = academic_year_bounds(staged.academic_year)
    known = known[(day >= pd.Timestamp(y0)) & (day <= pd.Timestamp(y1))]
    return known[["student_id", "session_date", "program"]].reset_index(drop=True), unknown


# --------------------------------------------------------------------------- 2. reconcile
def reconcile_stage(run: AfterschoolRun, reader: SqlReader | PowerSchoolReader,
                    store_engine: sa.Engine) -> dict[str, Any]:
    t0 = time.perf_counter()
    snap = run.snapshot(reader)
    store = AfterschoolStore(store_engine)
    staged = store.staged(snap.lea, run.academic_year, needed_by="The reconciliation")
    rows, counts = compare(run.academic_year, staged, snap, store)
    shown = rows.drop(columns="student_id")
    reports.write_frame(run.report_dir, "reconciliation.csv", shown)
    table = pd.DataFrame([{"kind": k, **v} for k, v in counts.items()])
    reports.write_private(run.report_dir / "reconciliation.html", reports.page(
        "Afterschool platform vs SIS, per student per month", "reconciliation_intro.html",
        [("What each kind means", reports.table(explained())),
         ("Counts by kind", reports.table(table)),
         ("Student-months with a discrepancy (Local Student ID)",
          reports.table(shown[shown["status"] == "discrepancy"]))]))
    folder = run.publish()
    return _timed({"student_months": int(len(rows)), "students": int(rows["student_id"].nunique()),
                   "with_discrepancy": int((rows["status"] == "discrepancy").sum()),
                   "kinds": {k: counts[k] for k in (*KINDS, "unknown_student")},
                   "categories": by_category(counts), "report": f"{folder}/reconciliation.html"}, t0)


def compare(academic_year: str, staged: Staged, snap: SisSnapshot, store: AfterschoolStore
            ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The platform's export (staged + held back) against the SIS's participation of the year, per student-month."""
    held, unknown = held_attendance(staged, snap)
    y0, y1 = academic_year_bounds(academic_year)
    written = store.written_days(snap.lea, y0.isoformat(), y1.isoformat())
    rows = reconcile(staged.sessions, snap.participation, snap.enrollments, snap.absences, snap.students,
                     held=held, written=written, registered=staged.registered_ids())
    return rows, summary(rows, unknown)


# --------------------------------------------------------------------------- 3. write back
def writeback_stage(run: AfterschoolRun, reader: SqlReader | PowerSchoolReader, target: Any,
                    store_engine: sa.Engine, mode: str, ceiling: float = 0.05) -> dict[str, Any]:
    from calpads.afterschool import writeback

    t0 = time.perf_counter()
    snap = run.snapshot(reader)
    store = AfterschoolStore(store_engine)
    staged = store.staged(snap.lea, run.academic_year, needed_by="The write-back")
    p = writeback.plan(staged.sessions, snap, year_start=run.year_start, last_day=run.last_day,
                       registered=staged.registered_ids())
    shown = ["local_student_id", "participation_date", "program", "minutes", "schoolid"]
    planned = pd.concat([p.inserts[shown].assign(action="insert"),
                         p.updates[shown].assign(action="update")], ignore_index=True)[["action", *shown]]
    reports.write_frame(run.report_dir, "writeback_plan.csv", planned)
    invalid = p.invalid[[*shown, "rule_id"]].assign(
        what_is_wrong=p.invalid["rule_id"].map(lambda r: writeback.RULES[r][0]),
        what_to_do=p.invalid["rule_id"].map(lambda r: writeback.RULES[r][1]))
    reports.write_frame(run.report_dir, "writeback_invalid.csv", invalid)
    verb = "would be written (dry run: nothing was written)" if mode == "dry_run" else "written"
    reports.write_private(run.report_dir / "writeback.html", reports.page(
        f"Afterschool participation write-back to the SIS ({mode})", "writeback_intro.html",
        [("Rows " + verb, reports.table(planned)), ("Rows that failed validation", reports.table(invalid))],
        target_name=target.name, inserts=len(p.inserts), updates=len(p.updates), verb=verb, unchanged=p.unchanged,
        invalid=len(p.invalid), table_exists=p.table_exists))
    folder = run.publish()
    try:
        out = writeback.apply(p, target, store, mode=mode, lea=snap.lea, academic_year=run.academic_year,
                              dag_id=run.dag_id, run_id=run.run_id, ceiling=ceiling)
    except writeback.WriteRejected:
        raise
    out["report"] = f"{folder}/writeback.html"
    out["table_exists"] = p.table_exists
    return _timed(out, t0)


# --------------------------------------------------------------------------- 4. attendance recovery
def recovery_stage(run: AfterschoolRun, reader: SqlReader | PowerSchoolReader, store_engine: sa.Engine,
                   threshold: float = CHRONIC_THRESHOLD) -> dict[str, Any]:
    t0 = time.perf_counter()
    snap = run.snapshot(reader)
    sessions = AfterschoolStore(store_engine).staged(snap.lea, run.academic_year,
                                                     needed_by="The attendance recovery list").sessions
    ar = sessions[sessions["program"] == "AR"]
    grades = snap.students[["student_id", "grade_level"]]
    rec = recovered_days(ar, snap.absences, grades)
    cand = recovery_candidates(recovered=rec, absences=snap.absences, enrollments=snap.enrollments,
                               calendar=snap.calendar, students=snap.students, as_of=run.last_day,
                               threshold=threshold)
    month = run.run_date.strftime("%Y-%m")
    shown = cand.drop(columns="student_id")
    reports.write_frame(run.report_dir / "recovery" / month, "attendance_recovery_list.csv", shown)
    reports.write_private(run.report_dir / "recovery" / month / "attendance_recovery_list.html", reports.page(
        f"Attendance recovery list for the afterschool director, {month}", "recovery_intro.html",
        [("Students", reports.table(shown))], threshold=threshold))
    folder = run.publish()
    return _timed({"students_with_ar": int((rec["ar_days_attended"] > 0).sum()),
                   "recovered_days_total": int(rec["recovered_days"].sum()),
                   "candidates": int(len(cand)), "chronic": int((cand["status"] == "chronic").sum()),
                   "report": f"{folder}/recovery/{month}/attendance_recovery_list.html"}, t0)


def summary_email(run: AfterschoolRun, results: dict[str, Any]) -> tuple[str, str]:
    """Counts only (no student data), each discrepancy kind with its category and who acts on it."""
    from calpads.afterschool.reconcile import KIND_INFO, ROLE_WORDS

    imp, rec = results.get("import") or {}, results.get("reconcile") or {}
    wb, ar = results.get("writeback") or {}, results.get("recovery") or {}
    subject = (f"[CALPADS] afterschool_sync {run.academic_year}: {imp.get('held_back', '?')} rows held back, "
               f"{rec.get('with_discrepancy', '?')} student-months with discrepancies ({run.run_id})")
    kinds = [{"kind": k, "students": v.get("students", 0), "days": v.get("days", 0),
              "category": KIND_INFO[k].category, "who": ROLE_WORDS[KIND_INFO[k].role],
              "what_to_do": KIND_INFO[k].what_to_do} for k, v in (rec.get("kinds") or {}).items() if k in KIND_INFO]
    body = templates.render(
        "calpads.afterschool", "summary_email.html", errors=results.get("errors") or {}, imp=imp, rec=rec, wb=wb,
        ar=ar, regs=imp.get("registrations") or {}, rules=imp.get("rules") or {}, kinds=kinds,
        categories=", ".join(f"{k} {v}" for k, v in (rec.get("categories") or {}).items()), run_folder=run.run_folder)
    return subject, body


def summary_roles(results: dict[str, Any]) -> tuple[str, ...]:
    """Who gets the summary: afterschool staff always (held-back rows, the recovery list); district IT when a
    stage failed or an integration discrepancy shows; the CALPADS coordinator for process discrepancies."""
    from calpads.afterschool.reconcile import KIND_INFO

    roles = ["afterschool"]
    kinds = (results.get("reconcile") or {}).get("kinds") or {}
    for kind, v in kinds.items():
        if kind in KIND_INFO and (v.get("days") if isinstance(v, dict) else v):
            roles.append(KIND_INFO[kind].role)
    if results.get("errors"):
        roles.append("it")
    return tuple(dict.fromkeys(roles))
