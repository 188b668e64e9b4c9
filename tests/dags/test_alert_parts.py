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

Each failure is set up in its own folder with its own mail server; the six runs go through one `airflow dags
test` process (one Airflow start-up) and each test reads its own run.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads.demo.mailbox import start
from tests.conftest import Mailbox
from tests.dags.dagrun import DagRunRequest, DagRunResult, project_env, run_dags
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


def _plant_interrupted_publication(pub: Path, run_id: str) -> Path:
    """What a publication killed mid-copy leaves: a hidden temporary run folder (no process holds it)."""
    folder = pub / YEAR / "SPRG" / f".{run_id}.incomplete"
    folder.mkdir(parents=True, mode=0o700)
    (folder / ".SPRG_1234567_2025-2026.txt.partial").write_bytes(b"SPRG^^1.1^1234567^")
    return folder


@dataclass
class Scenario:
    """One failure set up in its own folder (SIS, store, work and publish roots) with its own mail server."""
    tmp_path: Path
    smtp_server: Mailbox
    result: DagRunResult | None = None
    skipped: str | None = None
    share: Path | None = None
    left: Path | None = None


@pytest.fixture(scope="module")
def scenarios(airflow_home, tmp_path_factory) -> Iterator[dict[str, Scenario]]:
    """The six calpads_sprg runs, each in its own set-up, as `airflow dags test` runs in one process
    (tests/dags/dagrun.run_dags: one Airflow start-up instead of six). The read-only folders stay read-only
    until the module's tests have read the outcomes."""
    names = ["missing_store", "read_only_work", "read_only_share", "missing_share", "interrupted", "mail_down"]
    with ExitStack() as stack:
        out: dict[str, Scenario] = {}
        for name in names:
            tmp = tmp_path_factory.mktemp(name)
            controller = start(tmp / "mail", port=0)
            stack.callback(controller.stop)
            out[name] = Scenario(tmp, Mailbox(tmp / "mail", controller.port))
        requests: dict[str, DagRunRequest] = {}

        def plan(name: str, date: str, conf: dict | None = None, **overrides) -> dict[str, str]:
            sc = out[name]
            env = _env(airflow_home, sc.tmp_path, sc.smtp_server.port, **overrides)
            requests[name] = DagRunRequest(env, "calpads_sprg", date, conf or {"academic_year": YEAR})
            return env

        tmp = out["missing_store"].tmp_path
        plan("missing_store", "2026-03-10", store_url=f"sqlite:///{tmp}/gone/store.db")
        try:
            work = stack.enter_context(read_only(out["read_only_work"].tmp_path / "work"))
            plan("read_only_work", "2026-03-11", work_root=work)
        except pytest.skip.Exception as exc:
            out["read_only_work"].skipped = str(exc)
        try:
            share = stack.enter_context(read_only(out["read_only_share"].tmp_path / "share"))
            out["read_only_share"].share = share
            plan("read_only_share", "2026-03-12", publish_root=share)
        except pytest.skip.Exception as exc:
            out["read_only_share"].skipped = str(exc)
        env = plan("missing_share", "2026-03-13")
        env["AIRFLOW_VAR_CALPADS_PUBLISH_ROOT"] = f"file://{out['missing_share'].tmp_path / 'share_not_mounted'}"
        plan("interrupted", "2026-03-14")
        out["interrupted"].left = _plant_interrupted_publication(out["interrupted"].tmp_path / "pub", "manual__killed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        env = _env(airflow_home, out["mail_down"].tmp_path, closed_port)
        env["AIRFLOW__CALPADS__RETRY_DELAY_SECONDS"] = "1"
        # so that the run has an email to send
        _plant_interrupted_publication(out["mail_down"].tmp_path / "pub", "manual__killed")
        requests["mail_down"] = DagRunRequest(env, "calpads_sprg", "2026-03-15",
                                              {"academic_year": YEAR, "save_history": True})

        for name, result in zip(requests, run_dags(list(requests.values())), strict=True):
            out[name].result = result
        yield out


def _ran(scenarios: dict[str, Scenario], name: str) -> tuple[DagRunResult, Path, Mailbox]:
    sc = scenarios[name]
    if sc.skipped:
        pytest.skip(sc.skipped)
    assert sc.result is not None
    return sc.result, sc.tmp_path, sc.smtp_server


def _alert(smtp_server, task_id: str) -> str:
    texts = [t for t in smtp_server.texts() if "FAILED" in t and task_id in t]
    assert texts, smtp_server.texts()
    return texts[0]


def test_a_missing_store_database_is_blamed_on_the_store(scenarios):
    result, tmp_path, smtp_server = _ran(scenarios, "missing_store")
    assert result.state == "failed" and result.task_states["extract_records"] == "failed", result.task_states
    alert = _alert(smtp_server, "extract_records")
    assert "<b>Failing part:</b> history store" in alert and "calpads_store" in alert, alert
    assert "unable to open database file" in alert
    assert "SIS could not be read" not in alert and "(SIS)" not in alert
    assert not (tmp_path / "gone").exists()


def test_a_read_only_work_root_is_blamed_on_the_work_folder(scenarios):
    result, _tmp_path, smtp_server = _ran(scenarios, "read_only_work")
    assert result.state == "failed" and result.task_states["extract_records"] == "failed", result.task_states
    alert = _alert(smtp_server, "extract_records")
    assert "<b>Failing part:</b> work folder" in alert and "calpads_work_root" in alert, alert
    assert "Read-only file system" in alert or "Permission denied" in alert
    assert "SIS could not be read" not in alert


def test_a_read_only_publish_root_is_blamed_on_the_publish_share(scenarios):
    result, _tmp_path, smtp_server = _ran(scenarios, "read_only_share")
    assert not list(scenarios["read_only_share"].share.rglob("*"))      # still read-only (module fixture)
    assert result.state == "failed" and result.task_states["quality_gate"] == "failed", result.task_states
    alert = _alert(smtp_server, "quality_gate")
    assert "<b>Failing part:</b> publish share" in alert and "calpads_publish_root" in alert, alert
    assert "fix the listed records" not in alert.lower() and "validation report" not in alert.lower()


def test_a_missing_publish_root_is_never_created_and_the_alert_says_so(scenarios):
    result, tmp_path, smtp_server = _ran(scenarios, "missing_share")
    missing = tmp_path / "share_not_mounted"
    assert result.state == "failed" and result.task_states["quality_gate"] == "failed", result.task_states
    assert not missing.exists()
    alert = _alert(smtp_server, "quality_gate")
    assert f"Publish failed: the publish folder file://{missing} is missing" in alert, alert
    assert "<b>Failing part:</b> publish share" in alert


def test_the_next_run_removes_an_interrupted_publication_and_emails_what_it_removed(scenarios):
    result, tmp_path, smtp_server = _ran(scenarios, "interrupted")
    assert result.state == "success", result.output[-3000:]
    assert not scenarios["interrupted"].left.exists()
    assert_no_stray_files(tmp_path / "pub")
    summary = next(t for t in smtp_server.texts() if "interrupted" in t)
    assert ".manual__killed.incomplete" in summary and "Cleaned up after an interrupted publication" in summary


def test_a_mail_server_down_after_a_good_publish_says_the_files_are_ready(scenarios):
    result, tmp_path, _smtp_server = _ran(scenarios, "mail_down")
    states = result.task_states
    assert states["publish_files"] == "success" and states["save_submission_history"] == "success", states
    assert states["send_run_summary"] == "failed" and states["run_outcome"] == "success", states
    assert result.state == "success", result.output[-3000:]
    folder = tmp_path / "pub" / YEAR / "SPRG" / result.run_id
    assert (folder / "manifest.json").is_file()
    assert "The files are ready: 30 records published in" in result.output
    assert "Only the summary email failed: the mail server could not be reached" in result.output
    assert "Connection refused" in result.output
