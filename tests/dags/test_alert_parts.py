"""Each failure's alert names the part that failed and what to do (real `airflow dags test` runs of
calpads_sprg, a real SMTP server):

- a missing store database -> "history store" (not "the SIS could not be read");
- a read-only work root -> "work folder";
- a read-only publish root -> "publish share" (not "fix the listed records");
- a missing publish root (a share that is not mounted) -> "Publish failed: the publish folder ... is
  missing", and the folder is not created;
- the mail server down after a good publish -> the run succeeds, the summary email task fails saying
  "The files are ready ... Only the summary email failed";
- a hidden folder left by a killed publication -> removed by the next run, named in its summary email.
"""

from __future__ import annotations

import os
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.dags.dagrun import project_env, run_dag
from tests.integration.reliability import YEAR, assert_no_stray_files, make_sis

pytestmark = pytest.mark.dag
STUDENTS = 30


@contextmanager
def read_only(folder: Path):
    """folder, read-only for the Airflow user: a read-only tmpfs when running as root (root ignores modes)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755,ro", "tmpfs", str(folder)],
                        capture_output=True)
    if ok.returncode != 0:
        pytest.skip("cannot make a read-only folder here (root, and mounting is not permitted)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _env(airflow_home: Path, tmp_path: Path, smtp_port: int, **overrides) -> dict[str, str]:
    sis = tmp_path / "sis.db"
    if not sis.exists():
        make_sis(sa.create_engine(f"sqlite:///{sis}"), students=STUDENTS)
    kw = dict(sis_url=f"sqlite:///{sis}", store_url=f"sqlite:///{tmp_path}/store.db", publish_root=tmp_path / "pub",
              work_root=tmp_path / "work", smtp_port=smtp_port)
    kw.update(overrides)
    return project_env(airflow_home, **kw)


def _alert(smtp_server, task_id: str) -> str:
    texts = [t for t in smtp_server.texts() if "FAILED" in t and task_id in t]
    assert texts, smtp_server.texts()
    return texts[0]


def test_a_missing_store_database_is_blamed_on_the_store(airflow_home, tmp_path, smtp_server):
    env = _env(airflow_home, tmp_path, smtp_server.port, store_url=f"sqlite:///{tmp_path}/gone/store.db")
    result = run_dag(env, "calpads_sprg", "2026-03-10", {"academic_year": YEAR})
    assert result.state == "failed" and result.task_states["extract_records"] == "failed", result.task_states
    alert = _alert(smtp_server, "extract_records")
    assert "<b>Failing part:</b> history store" in alert and "calpads_store" in alert, alert
    assert "unable to open database file" in alert
    assert "SIS could not be read" not in alert and "(SIS)" not in alert
    assert not (tmp_path / "gone").exists()


def test_a_read_only_work_root_is_blamed_on_the_work_folder(airflow_home, tmp_path, smtp_server):
    with read_only(tmp_path / "work") as work:
        env = _env(airflow_home, tmp_path, smtp_server.port, work_root=work)
        result = run_dag(env, "calpads_sprg", "2026-03-11", {"academic_year": YEAR})
    assert result.state == "failed" and result.task_states["extract_records"] == "failed", result.task_states
    alert = _alert(smtp_server, "extract_records")
    assert "<b>Failing part:</b> work folder" in alert and "calpads_work_root" in alert, alert
    assert "Read-only file system" in alert or "Permission denied" in alert
    assert "SIS could not be read" not in alert


def test_a_read_only_publish_root_is_blamed_on_the_publish_share(airflow_home, tmp_path, smtp_server):
    with read_only(tmp_path / "share") as share:
        env = _env(airflow_home, tmp_path, smtp_server.port, publish_root=share)
        result = run_dag(env, "calpads_sprg", "2026-03-12", {"academic_year": YEAR})
        assert not list(share.rglob("*"))
    assert result.state == "failed" and result.task_states["quality_gate"] == "failed", result.task_states
    alert = _alert(smtp_server, "quality_gate")
    assert "<b>Failing part:</b> publish share" in alert and "calpads_publish_root" in alert, alert
    assert "fix the listed records" not in alert.lower() and "validation report" not in alert.lower()


def test_a_missing_publish_root_is_never_created_and_the_alert_says_so(airflow_home, tmp_path, smtp_server):
    env = _env(airflow_home, tmp_path, smtp_server.port)
    missing = tmp_path / "share_not_mounted"
    env["AIRFLOW_VAR_CALPADS_PUBLISH_ROOT"] = f"file://{missing}"
    result = run_dag(env, "calpads_sprg", "2026-03-13", {"academic_year": YEAR})
    assert result.state == "failed" and result.task_states["quality_gate"] == "failed", result.task_states
    assert not missing.exists()
    alert = _alert(smtp_server, "quality_gate")
    assert f"Publish failed: the publish folder file://{missing} is missing" in alert, alert
    assert "<b>Failing part:</b> publish share" in alert


def _plant_interrupted_publication(pub: Path, run_id: str) -> Path:
    """What a publication killed mid-copy leaves: a hidden temporary run folder (no process holds it)."""
    folder = pub / YEAR / "SPRG" / f".{run_id}.incomplete"
    folder.mkdir(parents=True, mode=0o700)
    (folder / ".SPRG_1234567_2025-2026.txt.partial").write_bytes(b"SPRG^^1.1^1234567^")
    return folder


def test_the_next_run_removes_an_interrupted_publication_and_emails_what_it_removed(airflow_home, tmp_path,
                                                                                   smtp_server):
    env = _env(airflow_home, tmp_path, smtp_server.port)
    left = _plant_interrupted_publication(tmp_path / "pub", "manual__killed")
    result = run_dag(env, "calpads_sprg", "2026-03-14", {"academic_year": YEAR})
    assert result.state == "success", result.output[-3000:]
    assert not left.exists()
    assert_no_stray_files(tmp_path / "pub")
    summary = next(t for t in smtp_server.texts() if "interrupted" in t)
    assert ".manual__killed.incomplete" in summary and "Cleaned up after an interrupted publication" in summary


def test_a_mail_server_down_after_a_good_publish_says_the_files_are_ready(airflow_home, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    env = _env(airflow_home, tmp_path, closed_port)
    env["AIRFLOW__CALPADS__RETRY_DELAY_SECONDS"] = "1"
    _plant_interrupted_publication(tmp_path / "pub", "manual__killed")   # so that the run has an email to send
    result = run_dag(env, "calpads_sprg", "2026-03-15", {"academic_year": YEAR, "save_history": True})
    states = result.task_states
    assert states["publish_files"] == "success" and states["save_submission_history"] == "success", states
    assert states["send_run_summary"] == "failed" and states["run_outcome"] == "success", states
    assert result.state == "success", result.output[-3000:]
    folder = tmp_path / "pub" / YEAR / "SPRG" / result.run_id
    assert (folder / "manifest.json").is_file()
    assert "The files are ready: 30 records published in" in result.output
    assert "Only the summary email failed: the mail server could not be reached" in result.output
    assert "Connection refused" in result.output
