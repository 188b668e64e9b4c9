"""What to upload tonight: the verdict of each file's latest run, read from the publish root.

A run folder (``<publish_root>/<academic year>/<RECORD TYPE>/<run id>/``, calpads.publish.target) is
complete when it holds ``manifest.json``; a folder with only ``report/`` is a run that published nothing
(the quality gate's error ceiling or the delete guard stopped it). What Airflow knows about the run
(its state and failed tasks) refines the verdict when the caller has it (the CALPADS page of the Airflow UI
reads it from the metadata database); without it the folder alone decides.

Verdicts (one place for their wording, shared by the page and the run note):

- ``READY``: the files are published; nothing held back.
- ``READY, n held back``: the files are published; n records break an error rule and wait for a fix in the SIS.
- ``STOPPED``: a gate or guard stopped the run on purpose: nothing was published.
- ``FAILED``: something broke (SIS, store, share, save of the history): do not upload.
- ``RUNNING``: the run has not finished.

A good publish whose summary email failed is still READY; its detail says "files ready; summary email
failed". A published run whose save of the submission history failed is FAILED: its files must not be
uploaded until the save is retried (docs/production.md, "Reading a run").

No Airflow imports: the plugin and the DAG tasks call it, the unit tests call it alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

READY = "READY"
STOPPED = "STOPPED"
FAILED = "FAILED"
RUNNING = "RUNNING"
EMAIL_FAILED = "files ready; summary email failed"
# Tasks of the file DAGs (calpads_airflow.factories.file_dag) whose failure means a gate or guard stopped
# the run on purpose.
STOPPING_TASKS = {"quality_gate": "the quality gate (too many records in error)",
                  "diff_against_history": "the delete guard",
                  "check_params": "the run parameters"}
EMAIL_TASK = "send_run_summary"
SAVE_TASK = "save_submission_history"
OUTCOME_TASK = "run_outcome"
NOTE_LIMIT = 1000       # characters: the longest note Airflow's REST API accepts on a DAG run


@dataclass(frozen=True)
class AirflowRun:
    """What the metadata database says about a run (the CALPADS page reads it; None when unknown)."""

    run_id: str
    state: str                                   # queued | running | success | failed
    failed_tasks: tuple[str, ...] = ()
    note: str | None = None
    start_date: Any = None
    conf: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    label: str              # READY, READY, 3 held back, STOPPED, FAILED, RUNNING
    tone: str               # ready | held | stopped | failed | running (CSS class)
    detail: str             # one sentence for the coordinator


@dataclass
class RuleLine:
    rule_id: str
    count: int
    message: str = ""
    new: int = 0            # records held back by the rule now and not in the previous run
    fixed: int = 0          # records held back by the rule in the previous run and not now


@dataclass
class FileReadiness:
    academic_year: str
    record_type: str
    run_id: str | None
    folder: Any | None
    verdict: Verdict
    files: list[dict[str, Any]] = field(default_factory=list)      # manifest entries to upload
    check_only: list[dict[str, Any]] = field(default_factory=list)  # the full file: counts only, never uploaded
    held_back: int = 0
    rules: list[RuleLine] = field(default_factory=list)
    deletes: int = 0
    has_deletes_csv: bool = False
    has_report: bool = False
    previous_run_id: str | None = None
    mode: str | None = None
    save_history: bool = False


# --------------------------------------------------------------------------- the publish root
def _read_json(path: Any) -> dict[str, Any] | None:
    try:
        with path.open("r") as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _mtime(path: Any) -> float:
    st = path.stat()
    return float(st.st_mtime if hasattr(st, "st_mtime") else st["mtime"])


def run_folders(publish_root: Any, academic_year: str, record_type: str) -> list[Any]:
    """The run folders of a file, newest first (by the manifest, else the report, else the folder itself).
    A publication's hidden temporary folder (a name starting with ".") is never a result."""
    base = publish_root / academic_year / record_type
    if not base.exists():
        return []
    found = []
    for run in base.iterdir():
        if run.name.startswith(".") or not run.is_dir():
            continue
        marker = next((p for p in (run / "manifest.json", run / "report" / "index.html") if p.exists()), run)
        found.append((_mtime(marker), run.name, run))
    return [run for _, _, run in sorted(found, key=lambda t: (t[0], t[1]), reverse=True)]


def academic_years(publish_root: Any) -> list[str]:
    """The academic years with a folder under the publish root, latest first ("2025-2026")."""
    if not publish_root.exists():
        return []
    years = [p.name for p in publish_root.iterdir()
             if p.is_dir() and len(p.name) == 9 and p.name[4] == "-" and p.name.replace("-", "").isdigit()]
    return sorted(years, reverse=True)


def error_findings(report_folder: Any) -> set[tuple[str, str]]:
    """(rule id, Local Record ID) of each error finding in the run's report/findings.csv."""
    path = report_folder / "findings.csv"
    if not path.exists():
        return set()
    with path.open("r") as fh:
        text = fh.read()
    return {(row.get("rule_id", ""), row.get("local_record_id", "")) for row in csv.DictReader(io.StringIO(text))
            if row.get("severity") == "error"}


# --------------------------------------------------------------------------- verdicts
def held_back_label(held: int) -> str:
    return READY if not held else f"{READY}, {held} held back"


def verdict(manifest: dict[str, Any] | None, *, has_report: bool, has_deletes_report: bool = False,
            run: AirflowRun | None = None) -> Verdict:
    """The verdict of one run from its folder (manifest, report) and, when known, Airflow's view of it."""
    failed = set(run.failed_tasks) if run else set()
    if manifest is not None:
        held = int((manifest.get("validation") or {}).get("records_held_back") or 0)
        label, tone = held_back_label(held), "held" if held else "ready"
        if SAVE_TASK in failed:
            return Verdict(FAILED, "failed", "Files published but NOT saved as submitted: clear the task "
                           "'Save submission history' to retry before uploading.")
        if manifest.get("bypass_validation"):
            return Verdict(label, "held", "Validation was BYPASSED: records in error were published; check the "
                           "report before uploading.")
        if run is not None and run.state in ("queued", "running"):
            return Verdict(label, tone, "Files published; the run is still finishing.")
        detail = EMAIL_FAILED if EMAIL_TASK in failed else (
            "Files published; the held-back records wait for a fix in the SIS." if held else "Files published.")
        return Verdict(label, tone, detail)
    if run is not None and run.state in ("queued", "running"):
        return Verdict(RUNNING, "running", "The run has not finished.")
    stopping = [STOPPING_TASKS[t] for t in STOPPING_TASKS if t in failed]
    if stopping:
        return Verdict(STOPPED, "stopped", f"Stopped by {stopping[0]}: nothing was published.")
    other = sorted(failed - {EMAIL_TASK, OUTCOME_TASK})
    if other:
        return Verdict(FAILED, "failed", f"Failed at {', '.join(other)}: nothing was published.")
    if has_report:
        by = STOPPING_TASKS["diff_against_history"] if has_deletes_report else STOPPING_TASKS["quality_gate"]
        return Verdict(STOPPED, "stopped", f"Stopped by {by}: nothing was published.")
    return Verdict(FAILED, "failed", "The run published nothing.")


def rule_lines(manifest: dict[str, Any] | None, now: set[tuple[str, str]] | None = None,
               before: set[tuple[str, str]] | None = None) -> list[RuleLine]:
    """Held back by rule (error rules of the manifest), with the records new and fixed since the previous run
    when both runs' findings are given. A rule held back before and not at all now appears with count 0."""
    rules = ((manifest or {}).get("validation") or {}).get("rules") or {}
    lines = {k: RuleLine(k, int(r.get("count") or 0), str(r.get("message") or r.get("rule_text") or ""))
             for k, r in rules.items() if r.get("severity") == "error"}
    if now is not None and before is not None:
        for rule_id, n in Counter(rule for rule, _ in now - before).items():
            lines.setdefault(rule_id, RuleLine(rule_id, 0)).new = n
        for rule_id, n in Counter(rule for rule, _ in before - now).items():
            lines.setdefault(rule_id, RuleLine(rule_id, 0)).fixed = n
    return sorted(lines.values(), key=lambda r: (-r.count, -r.fixed, r.rule_id))


def file_readiness(publish_root: Any, academic_year: str, record_type: str,
                   runs: dict[str, AirflowRun] | None = None, run_folder: str | None = None) -> FileReadiness:
    """The latest run of a file for an academic year, or the run whose folder is named ``run_folder``
    (``runs``: Airflow's view by run-folder name). "Previous" is the complete run before it."""
    folders = run_folders(publish_root, academic_year, record_type)
    if run_folder is not None:
        folders = folders[[f.name for f in folders].index(run_folder):] if run_folder in [f.name for f in folders] \
            else []
    if not folders:
        return FileReadiness(academic_year, record_type, None, None,
                             Verdict("NO RUN", "none", f"No {record_type} run for {academic_year} yet."))
    latest = folders[0]
    manifest = _read_json(latest / "manifest.json")
    report = latest / "report"
    has_deletes = (report / "deletes.csv").exists()
    run = (runs or {}).get(latest.name)
    out = FileReadiness(academic_year, record_type, (manifest or {}).get("run_id") or (run.run_id if run else
                        latest.name), latest,
                        verdict(manifest, has_report=(report / "index.html").exists(), has_deletes_report=has_deletes,
                                run=run),
                        has_deletes_csv=has_deletes, has_report=(report / "index.html").exists())
    previous = next((f for f in folders[1:] if (f / "manifest.json").exists()), None)
    out.previous_run_id = previous.name if previous is not None else None
    if manifest is None:
        return out
    files = manifest.get("files") or []
    out.files = [f for f in files if f.get("kind") != "full"] or files
    out.check_only = [f for f in files if f.get("kind") == "full" and len(files) > 1]
    out.held_back = int((manifest.get("validation") or {}).get("records_held_back") or 0)
    out.deletes = int((manifest.get("counts") or {}).get("deletes") or 0)
    params = manifest.get("params") or {}
    out.mode, out.save_history = params.get("mode"), bool(params.get("save_history"))
    before = error_findings(previous / "report") if previous is not None else None
    out.rules = rule_lines(manifest, error_findings(report), before)
    return out


def latest_by_year(publish_root: Any, runs: dict[str, dict[str, AirflowRun]]) -> tuple[list[FileReadiness], list[str]]:
    """The latest run of each file (the record types of ``runs``: Airflow's view of each file DAG's runs) for
    each academic year under ``publish_root``, latest year first; and the files with no run folder in any year.
    One LEA's publish root: a deployment with an LEA file calls it once per LEA, each with its own root and
    its own DAGs' runs, so nothing of one LEA reaches another's section."""
    found: list[FileReadiness] = []
    for year in academic_years(publish_root):
        for record_type, by_folder in runs.items():
            r = file_readiness(publish_root, year, record_type, by_folder)
            if r.run_id is None and not (publish_root / year / record_type).exists():
                continue
            found.append(r)
    never = [rt for rt in runs if not any(r.record_type == rt for r in found)]
    return found, never


def last_saved(store: Any, record_type: str, academic_year: str, lea_code: str | None) -> dict[str, Any] | None:
    """The last run of a file and year saved as submitted in the history store (calpads.history.store), or None.
    ``lea_code``: a listed LEA's CDS code, the only LEA whose rows are read (the store is shared by the LEAs of
    a deployment); None for the single LEA of a deployment without an LEA file (every row of the store)."""
    if lea_code is not None and not lea_code:
        raise ValueError("An LEA's code is required to read its submission history")
    runs = store.runs(record_type, lea=lea_code, academic_year=academic_year)
    if not len(runs):
        return None
    row = runs.iloc[-1]
    return {"run_id": row["run_id"], "saved_at": row["saved_at"], "records": row["record_count"],
            "add_update": row["add_update_count"], "deletes": row["delete_count"], "lea": row["reporting_lea"]}


# --------------------------------------------------------------------------- the run note
def run_note(record_type: str, academic_year: str, mode: str | None, *, validation: dict[str, Any] | None,
             published: dict[str, Any] | None, deletes: int | None, report_url: str | None,
             failed_tasks: list[str] | tuple[str, ...] = (), files: list[dict[str, Any]] | None = None) -> str:
    """The one line a run leaves on its Airflow run (run header, grid tooltip), e.g.
    "READY: 466 records in _AU, _AU2 - 0 deletes - 17 held back by 16 rules - report (SPRG 2025-2026, submission)".
    Markdown: Airflow renders run notes as Markdown, so the report is a link."""
    validation = validation or {}
    failed = set(failed_tasks)
    held = int(validation.get("records_held_back") or 0)
    error_rules = [k for k, r in (validation.get("rules") or {}).items() if r.get("severity") == "error"]
    n_rules = len(error_rules) or int(validation.get("rules_fired") or 0)
    scope = f"({record_type} {academic_year}{', ' + mode if mode else ''})"
    report = f"[report]({report_url})" if report_url and report_url.startswith(("http://", "https://", "/")) \
        else ("report in the run folder" if report_url else "")
    if published and published.get("records") is not None:
        names = [f.get("name", "") for f in files or []] or list(published.get("files") or [])
        suffixes = [_suffix(n) for n in names if _suffix(n) not in ("", "full")]
        label = held_back_label(0)
        if SAVE_TASK in failed:
            label = f"{FAILED}: files published but not saved as submitted"
        parts = [f"{label}: {published['records']} records"
                 + (f" in {', '.join(suffixes)}" if suffixes else ""),
                 f"{deletes or 0} deletes"]
        if held:
            parts.append(f"{held} held back by {n_rules} rule{'s' if n_rules != 1 else ''}")
        if EMAIL_TASK in failed:
            parts.append(EMAIL_FAILED)
    else:
        stop = next((STOPPING_TASKS[t] for t in STOPPING_TASKS if t in failed), None)
        broken = sorted(failed - {EMAIL_TASK, OUTCOME_TASK})
        head = f"{STOPPED} by {stop}" if stop else f"{FAILED} at {', '.join(broken)}" if broken else FAILED
        parts = [f"{head}: nothing published"]
        if validation.get("records_checked") is not None:
            parts.append(f"{held} of {validation['records_checked']} records held back")
    if report:
        parts.append(report)
    return (" - ".join(parts) + f" {scope}")[:NOTE_LIMIT]


def _suffix(name: str) -> str:
    """_AU, _AU2, _D of a published file name (SPRG_<lea>_<year>_AU2.txt); "full" for the file without suffix."""
    stem = name.rsplit(".", 1)[0]
    last = stem.rsplit("_", 1)[-1]
    return f"_{last}" if last in ("D",) or last.startswith("AU") else "full"
