"""calpads.readiness: the verdict of each file's latest run from its run folders, and the run note."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from calpads.readiness import (
    EMAIL_FAILED,
    AirflowRun,
    academic_years,
    file_readiness,
    run_note,
    verdict,
)

YEAR = "2025-2026"
FINDING_COLUMNS = ["local_record_id", "local_student_id", "school_of_attendance", "rule_id", "severity", "field",
                   "column", "value", "rule_text", "fix"]


def run_folder(root: Path, run_id: str, *, held: dict[str, list[str]] | None = None, published: bool = True,
               deletes: int = 0, deletes_report: bool = False, age: int = 0) -> Path:
    """A run folder as the pipeline leaves it: report/index.html and findings.csv, then (published) the files
    and manifest.json. ``held``: error rule -> Local Record IDs held back by it. ``age``: seconds in the past."""
    held = held or {}
    folder = root / YEAR / "SPRG" / run_id.replace("/", "_")
    report = folder / "report"
    report.mkdir(parents=True)
    (report / "index.html").write_text("<html>report</html>")
    with open(report / "findings.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, FINDING_COLUMNS)
        w.writeheader()
        for rule, ids in held.items():
            for rid in ids:
                w.writerow({"local_record_id": rid, "local_student_id": "S" + rid, "rule_id": rule,
                            "severity": "error"})
        w.writerow({"local_record_id": "W1", "local_student_id": "SW1", "rule_id": "SPRG-WARN", "severity": "warning"})
    if deletes_report:
        (report / "deletes.csv").write_text("local_record_id\nD1\n")
    marker = report / "index.html"
    if published:
        n_held = len({rid for ids in held.values() for rid in ids})
        manifest = {
            "record_type": "SPRG", "run_id": run_id, "academic_year": YEAR, "params": {"mode": "submission"},
            "files": [{"name": f"SPRG_1234_{YEAR}.txt", "kind": "full", "records": 12},
                      {"name": f"SPRG_1234_{YEAR}_AU.txt", "kind": "AU", "records": 10},
                      {"name": f"SPRG_1234_{YEAR}_D.txt", "kind": "D", "records": deletes}],
            "counts": {"deletes": deletes},
            "validation": {"records_held_back": n_held, "records_checked": 12 + n_held,
                           "rules": {rule: {"count": len(ids), "severity": "error", "message": f"{rule} broken"}
                                     for rule, ids in held.items()}
                           | {"SPRG-WARN": {"count": 1, "severity": "warning"}}},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))
        marker = folder / "manifest.json"
    stamp = time.time() - age
    os.utime(marker, (stamp, stamp))
    return folder


def test_clean_run_is_ready_with_the_files_to_upload(tmp_path):
    run_folder(tmp_path, "manual__1", age=100)
    r = file_readiness(tmp_path, YEAR, "SPRG")
    assert (r.verdict.label, r.verdict.tone) == ("READY", "ready")
    assert [f["kind"] for f in r.files] == ["AU", "D"]          # the full file is for checking counts only
    assert [f["kind"] for f in r.check_only] == ["full"]
    assert r.held_back == 0 and r.rules == [] and r.mode == "submission"
    assert academic_years(tmp_path) == [YEAR]


def test_held_back_by_rule_with_new_and_fixed_since_the_previous_run(tmp_path):
    run_folder(tmp_path, "scheduled__1", held={"SPRG-A": ["1", "2"], "SPRG-B": ["3"]}, age=500)
    run_folder(tmp_path, "scheduled__2", held={"SPRG-A": ["2", "4", "5"], "SPRG-C": ["6"]}, age=10)
    r = file_readiness(tmp_path, YEAR, "SPRG")
    assert r.run_id == "scheduled__2" and r.previous_run_id == "scheduled__1"
    assert r.verdict.label == "READY, 4 held back" and r.verdict.tone == "held"
    lines = {line.rule_id: (line.count, line.new, line.fixed) for line in r.rules}
    assert lines == {"SPRG-A": (3, 2, 1), "SPRG-C": (1, 1, 0), "SPRG-B": (0, 0, 1)}   # warnings never count


def test_a_folder_without_manifest_is_a_stopped_run(tmp_path):
    run_folder(tmp_path, "manual__ok", age=600)
    run_folder(tmp_path, "manual__gate", published=False, age=5)
    r = file_readiness(tmp_path, YEAR, "SPRG")
    assert r.verdict.label == "STOPPED" and "quality gate" in r.verdict.detail
    assert r.files == [] and r.previous_run_id == "manual__ok"


def test_airflow_view_refines_the_verdict():
    m = {"validation": {"records_held_back": 0}}
    email = verdict(m, has_report=True, run=AirflowRun("r", "success", ("send_run_summary",)))
    assert email.label == "READY" and email.detail == EMAIL_FAILED
    save = verdict(m, has_report=True, run=AirflowRun("r", "failed", ("save_submission_history", "run_outcome")))
    assert save.label == "FAILED" and "NOT saved" in save.detail
    guard = verdict(None, has_report=True, run=AirflowRun("r", "failed", ("diff_against_history", "run_outcome")))
    assert guard.label == "STOPPED" and "delete guard" in guard.detail
    sis = verdict(None, has_report=False, run=AirflowRun("r", "failed", ("extract_records", "run_outcome")))
    assert sis.label == "FAILED" and "extract_records" in sis.detail
    assert verdict(None, has_report=False, run=AirflowRun("r", "running")).label == "RUNNING"
    assert verdict(None, has_report=True, has_deletes_report=True).detail.startswith("Stopped by the delete guard")


def test_no_run_yet(tmp_path):
    assert file_readiness(tmp_path, YEAR, "SENR").verdict.label == "NO RUN"


def test_run_note_says_what_the_run_did():
    validation = {"records_held_back": 17, "records_checked": 483,
                  "rules": {f"R{i}": {"severity": "error", "count": 1} for i in range(16)}
                  | {"W": {"severity": "warning", "count": 3}}}
    files = [{"name": f"SPRG_1234_{YEAR}.txt"}, {"name": f"SPRG_1234_{YEAR}_AU.txt"},
             {"name": f"SPRG_1234_{YEAR}_AU2.txt"}]
    note = run_note("SPRG", YEAR, "submission", validation=validation, published={"records": 466}, deletes=0,
                    report_url="http://localhost:8080/calpads/files/x/report/index.html", files=files)
    assert note.startswith("READY: 466 records in _AU, _AU2 - 0 deletes - 17 held back by 16 rules - [report](http")
    assert note.endswith("(SPRG 2025-2026, submission)")
    mailed = run_note("SPRG", YEAR, None, validation={}, published={"records": 3}, deletes=1, report_url=None,
                      failed_tasks=["send_run_summary"])
    assert EMAIL_FAILED in mailed and mailed.startswith("READY: 3 records")
    stopped = run_note("SPRG", YEAR, "test", validation={"records_held_back": 40, "records_checked": 50},
                       published=None, deletes=None, report_url=None, failed_tasks=["quality_gate", "run_outcome"])
    assert stopped.startswith("STOPPED by the quality gate") and "40 of 50 records held back" in stopped
    assert len(run_note("SPRG", YEAR, "x" * 2000, validation={}, published=None, deletes=None,
                        report_url=None)) == 1000
