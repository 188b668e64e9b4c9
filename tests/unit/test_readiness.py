"""calpads.readiness: the verdict of each file's latest run from its run folders, and the run note."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads.history.store import HistoryStore
from calpads.leas import LeaConfig, page_files_path
from calpads.readiness import (
    EMAIL_FAILED,
    AirflowRun,
    academic_years,
    file_readiness,
    last_saved,
    latest_by_year,
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


# --------------------------------------------------------------------------- one section per LEA
ALDER, BIRCH = "5610001", "5610002"     # two LEAs of tests/fixtures/leas_three.yaml


def lea(code: str, publish_root: str | None = None) -> LeaConfig:
    return LeaConfig(code=code, name=f"LEA {code}", publish_root=publish_root, emails={"team": ("t@x.example",)})


def saved_history(url: str, runs: list[tuple[str, str, int]]) -> HistoryStore:
    """A migrated history store at ``url`` with these (LEA, run id, records) saved as submitted, in that order:
    the store a deployment's LEAs share."""
    from tests.unit.test_history_support import LAYOUT, frame, rec

    store = HistoryStore(sa.create_engine(url))
    store.migrate()
    for code, run_id, n in runs:
        records = frame(*[rec(f"{run_id}.{i}", reporting_lea=code, local_student_id=str(5000 + i))
                          for i in range(n)])
        store.save_run(records, LAYOUT, lea=code, academic_year=YEAR, run_id=run_id, params={"mode": "submission"})
    return store


def test_each_lea_reads_only_its_own_folder_and_history_rows(tmp_path):
    base = tmp_path / "published"
    alder, birch = lea(ALDER), lea(BIRCH)
    alder_root, birch_root = (Path(x.publish_location(str(base))) for x in (alder, birch))
    # The same scheduled run id in both LEAs (one night), different findings.
    run_folder(alder_root, "scheduled__1", held={"ALDER-RULE": ["1"]}, age=50)
    run_folder(birch_root, "scheduled__1", held={"BIRCH-RULE": ["1", "2", "3"]}, age=40)
    run_folder(birch_root, "manual__birch_only", published=False, age=5)
    store = saved_history(f"sqlite:///{tmp_path}/store.db",
                          [(ALDER, "alder-saved", 2), (BIRCH, "birch-saved", 3)])   # Birch's is the latest row

    found, never = latest_by_year(alder_root, {"SPRG": {}, "SENR": {}})
    assert [(r.record_type, r.run_id, r.verdict.label) for r in found] == [("SPRG", "scheduled__1",
                                                                           "READY, 1 held back")]
    assert [line.rule_id for line in found[0].rules] == ["ALDER-RULE"] and never == ["SENR"]
    assert found[0].folder.is_relative_to(alder_root)
    birch_found, _ = latest_by_year(birch_root, {"SPRG": {}})
    assert birch_found[0].run_id == "manual__birch_only" and birch_found[0].verdict.label == "STOPPED"

    mine = last_saved(store, "SPRG", YEAR, ALDER)
    assert (mine["run_id"], mine["records"], mine["lea"]) == ("alder-saved", 2, ALDER)
    assert last_saved(store, "SPRG", YEAR, BIRCH)["run_id"] == "birch-saved"
    assert last_saved(store, "SPRG", YEAR, "5610003") is None          # an LEA with nothing saved sees nothing
    assert last_saved(store, "SPRG", YEAR, None)["run_id"] == "birch-saved"   # the single LEA: the whole store
    with pytest.raises(ValueError, match="code is required"):
        last_saved(store, "SPRG", YEAR, "")          # never an unscoped read for a listed LEA


def test_where_an_lea_publishes_and_where_the_page_serves_it():
    base = "file:///srv/calpads_out/"
    assert lea(ALDER).publish_location(base) == f"file:///srv/calpads_out/{ALDER}"
    assert lea(BIRCH, "s3://birch-bucket/calpads").publish_location(base) == "s3://birch-bucket/calpads"
    assert LeaConfig.single().publish_location(base) == base          # the single LEA: the Variable as it is
    assert page_files_path(None) == "files" and page_files_path(ALDER) == f"lea-{ALDER}"


def test_a_listed_lea_s_report_link_opens_its_own_folder_on_the_page():
    from calpads_airflow.run_notes import base_url, ui_url

    report = f"file:///srv/calpads_out/{ALDER}/{YEAR}/SPRG/scheduled__1/report/index.html"
    assert ui_url(report, ALDER) == f"{base_url()}/calpads/lea-{ALDER}/{YEAR}/SPRG/scheduled__1/report/index.html"
    single = f"file:///srv/calpads_out/{YEAR}/SPRG/scheduled__1/report/index.html"
    assert ui_url(single) == f"{base_url()}/calpads/files/{YEAR}/SPRG/scheduled__1/report/index.html"
    # As deep as the single LEA's: the report's relative link back to the Airflow UI (six levels up) still works.
    assert ui_url(report, ALDER).count("/") == ui_url(single).count("/")
