"""Private at rest: every file the pipeline writes under its default settings is unreadable by other
local users, whatever the umask (a demo-like run: generated district, real `airflow dags test` runs of
calpads_sprg with save_history and calpads_stas, SQLite store in a 0755 folder like the default
`$AIRFLOW_HOME/calpads_store.db`, umask 022). Then the tree is walked: the work folders and the store
owner-only (0600 / 0700), the published run folders owner/group-only (0640 / 0750).

Plus the pieces one by one with umask 000: the work folder levels, a SQLite store created through the
connection, and the maintenance task's retention of work folders.
"""

from __future__ import annotations

import os
import stat
import time
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads.maintenance import delete_old_work, parse_retention_days
from tests.dags.dagrun import DagRunRequest, project_env, run_dag, run_dags

YEAR = "2025-2026"


def too_open(root: Path, *, group: bool) -> dict[str, str]:
    """Every path under root (root included) readable, writable or enterable by others (or by the group when
    group is False)."""
    mask = 0o007 if group else 0o077
    out = {}
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        if mode & mask:
            out[str(p)] = oct(mode)
    return out


@pytest.mark.dag
def test_a_demo_like_run_leaves_nothing_readable_by_other_users(airflow_home, tmp_path, smtp_server):
    from calpads.demo.generator import generate_district

    sis = tmp_path / "sis.db"
    generate_district(sa.create_engine(f"sqlite:///{sis}"), students=300, seed=11, dirty=0.02, academic_year=YEAR,
                      log=lambda m: None)
    home_like = tmp_path / "airflow_home"           # like $AIRFLOW_HOME: a 0755 folder
    home_like.mkdir(mode=0o755)
    store = home_like / "calpads_store.db"
    pub, work = tmp_path / "pub", home_like / "calpads_work"
    env = project_env(airflow_home, sis_url=f"sqlite:///{sis}", store_url=f"sqlite:///{store}", publish_root=pub,
                      work_root=work, smtp_port=smtp_server.port)
    env["AIRFLOW__CALPADS__ERROR_CEILING"] = "0.5"
    old = os.umask(0o022)
    try:
        sprg, stas = run_dags([DagRunRequest(env, "calpads_sprg", "2026-05-04", {"academic_year": YEAR,
                                                                                "save_history": True}),
                               DagRunRequest(env, "calpads_stas", "2026-05-04", {"academic_year": YEAR})])
    finally:
        os.umask(old)
    assert sprg.state == "success", sprg.output[-3000:]
    assert stas.state == "success", stas.output[-3000:]

    assert {p.name for p in (pub / YEAR / "SPRG" / sprg.run_id).glob("*.txt")}, "nothing was published"
    assert list(work.rglob("*.parquet")), "no work files were written"
    with sa.create_engine(f"sqlite:///{store}").connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM calpads_history_log").scalar() > 0

    assert not too_open(work, group=False)
    stores = [p for p in home_like.iterdir() if p.name.startswith("calpads_store.db")]
    assert stores and not {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in stores
                           if stat.S_IMODE(p.stat().st_mode) & 0o077}
    assert not too_open(pub / YEAR, group=True)


def test_work_folders_and_a_new_sqlite_store_are_owner_only_whatever_the_umask(tmp_path):
    from calpads import pipeline
    from calpads.run_scope import RunScope
    from calpads_airflow.connections import private_sqlite_file

    old = os.umask(0)
    try:
        scope = RunScope.from_params("SPRG", {"academic_year": YEAR}, today=date(2026, 5, 1))
        ctx = pipeline.RunContext("SPRG", "calpads_sprg", "manual__x", scope, tmp_path / "root" / "dag" / "run",
                                  tmp_path / "pub")
        pipeline.prepare_work_dir(ctx)
        ctx.update_state(lea="1234567")
        import pandas as pd

        pipeline._to_parquet(pd.DataFrame({"a": ["x"]}), ctx.path("t.parquet"))
        private_sqlite_file(str(tmp_path / "store.db"))
        eng = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
        with eng.begin() as c:
            c.exec_driver_sql("CREATE TABLE t (x)")
        eng.dispose()
    finally:
        os.umask(old)
    assert not too_open(tmp_path / "root", group=False)
    assert stat.S_IMODE((tmp_path / "store.db").stat().st_mode) == 0o600


def test_work_folders_untouched_for_the_retention_period_are_deleted(tmp_path):
    now = time.time()
    day = 86400

    def run_folder(dag: str, run: str, age_days: float, newest_file_age: float | None = None) -> Path:
        folder = tmp_path / "work" / dag / run
        folder.mkdir(parents=True)
        f = folder / "records.parquet"
        f.write_bytes(b"x" * 1000)
        for p in (f, folder):
            os.utime(p, (now - age_days * day, now - age_days * day))
        if newest_file_age is not None:
            g = folder / "state.json"
            g.write_text("{}")
            os.utime(g, (now - newest_file_age * day, now - newest_file_age * day))
            os.utime(folder, (now - age_days * day, now - age_days * day))
        return folder

    old = run_folder("calpads_sprg", "scheduled__old", 8)
    recent = run_folder("calpads_sprg", "manual__recent", 6.9)
    cleared = run_folder("calpads_stas", "manual__cleared_yesterday", 30, newest_file_age=1)  # a retried task
    other = run_folder("afterschool_sync", "manual__old", 10)
    out = delete_old_work(tmp_path / "work", parse_retention_days(None), now=now)
    assert sorted(out["deleted"]) == ["afterschool_sync/manual__old", "calpads_sprg/scheduled__old"]
    assert out["kept"] == 2 and out["bytes_freed"] == 2000
    assert not old.exists() and not other.exists() and recent.exists() and cleared.exists()
    assert delete_old_work(tmp_path / "missing", 7)["deleted"] == []


def test_retention_days_must_be_a_number_of_at_least_one_day():
    assert parse_retention_days("") == 7 and parse_retention_days("14") == 14
    for bad in ("0", "-3", "a week"):
        with pytest.raises(ValueError, match="work_retention_days"):
            parse_retention_days(bad)


@pytest.mark.dag
def test_the_maintenance_dag_deletes_old_work_folders_and_interrupted_publications(airflow_home, tmp_path,
                                                                                  smtp_server):
    work, pub = tmp_path / "work", tmp_path / "pub"
    old = work / "calpads_sprg" / "scheduled__old"
    old.mkdir(parents=True)
    (old / "records.parquet").write_bytes(b"x")
    ten_days_ago = time.time() - 10 * 86400
    for p in (old / "records.parquet", old):
        os.utime(p, (ten_days_ago, ten_days_ago))
    fresh = work / "calpads_sprg" / "manual__fresh"
    fresh.mkdir(parents=True)
    left = pub / YEAR / "SPRG" / ".manual__killed.incomplete"
    left.mkdir(parents=True)
    (left / "SPRG_1234567_2025-2026.txt").write_text("half")
    env = project_env(airflow_home, sis_url=f"sqlite:///{tmp_path}/sis.db", store_url=f"sqlite:///{tmp_path}/s.db",
                      publish_root=pub, work_root=work, smtp_port=smtp_server.port)
    env["AIRFLOW__CALPADS__WORK_RETENTION_DAYS"] = "9"
    result = run_dag(env, "calpads_maintenance", "2026-05-05", {})
    assert result.state == "success", result.output[-3000:]
    assert not old.exists() and fresh.exists() and not left.exists()
    mail = next(t for t in smtp_server.texts() if "maintenance" in t)
    assert ".manual__killed.incomplete" in mail and "interrupted" in mail


@pytest.fixture(scope="module")
def afterschool_district(tmp_path_factory):
    """The demo district with its afterschool export and the SIS participation table (as scripts/demo.sh sets up)."""
    from calpads.afterschool.sis_migrate import migrate
    from calpads.demo.generator import generate_district

    folder = tmp_path_factory.mktemp("afterschool_district")
    engine = sa.create_engine(f"sqlite:///{folder}/sis.db")
    generate_district(engine, students=300, seed=7, academic_year=YEAR, afterschool_dir=folder / "drop",
                      log=lambda m: None)
    migrate(engine, apply=True)
    engine.dispose()
    return folder


def _afterschool_env(airflow_home: Path, district: Path, tmp_path: Path, smtp_port: int, pub: Path) -> dict[str, str]:
    env = project_env(airflow_home, sis_url=f"sqlite:///{tmp_path}/sis.db", store_url=f"sqlite:///{tmp_path}/s.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_port)
    (tmp_path / "sis.db").write_bytes((district / "sis.db").read_bytes())   # the write-back changes it
    env["AIRFLOW_VAR_CALPADS_PUBLISH_ROOT"] = f"file://{pub}"
    env["AIRFLOW_VAR_AFTERSCHOOL_DROP_PATH"] = str(district / "drop")
    env["AIRFLOW_VAR_AFTERSCHOOL_WRITE_MODE"] = "write"
    env["AIRFLOW__CALPADS__HEALTH_DAGS"] = "afterschool_sync"
    return env


def _sync_then_health(env: dict[str, str]):
    """afterschool_sync then integration_health, as `airflow dags test` runs in one process."""
    return run_dags([DagRunRequest(env, "afterschool_sync", "2026-06-30", {"academic_year": YEAR}),
                     DagRunRequest(env, "integration_health", "2026-07-01", {"academic_year": YEAR})])


@pytest.mark.dag
def test_afterschool_and_health_outputs_are_not_readable_by_other_users(airflow_home, afterschool_district,
                                                                        tmp_path, smtp_server):
    pub, work = tmp_path / "pub", tmp_path / "work"
    env = _afterschool_env(airflow_home, afterschool_district, tmp_path, smtp_server.port, pub)
    old = os.umask(0o022)
    try:
        sync, health = _sync_then_health(env)
    finally:
        os.umask(old)
    assert sync.state == "success", sync.output[-3000:]
    # the demo export's planted faults fail a health check (the run is red); the pages and results are published
    assert health.task_states["document_flows"] == "success", health.output[-3000:]
    assert health.task_states["email_summary"] == "success", health.output[-3000:]

    published = list((pub / YEAR / "AFTERSCHOOL").rglob("*.csv"))
    assert published and list((pub / YEAR / "AFTERSCHOOL").rglob("recovery/*")), "no afterschool reports"
    assert {p.name for p in (pub / "integration").iterdir()} == {"data_flows.html", "data_flows.md", "health.json"}
    assert list(work.glob("afterschool_sync/*/report/recovery/*")) and list(work.glob("integration_health/*/*"))
    assert not too_open(pub / YEAR, group=True)
    assert not too_open(pub / "integration", group=True)
    assert not too_open(work, group=False)


@pytest.mark.dag
def test_afterschool_and_health_never_create_a_missing_publish_root(airflow_home, afterschool_district, tmp_path,
                                                                   smtp_server):
    missing = tmp_path / "share_not_mounted"
    env = _afterschool_env(airflow_home, afterschool_district, tmp_path, smtp_server.port, missing)
    env["AIRFLOW__CALPADS__RETRY_DELAY_SECONDS"] = "1"    # the health email task's retry fails too: not 2 minutes
    sync, health = _sync_then_health(env)
    assert not missing.exists()
    said = f"the publish folder file://{missing} is missing (is the share mounted?)"
    assert sync.state == "failed" and sync.task_states["import_attendance"] == "failed", sync.task_states
    assert said in sync.output, sync.output[-3000:]
    assert health.task_states["document_flows"] == "failed", health.task_states
    assert health.task_states["email_summary"] == "failed", health.task_states   # health.json could not be written
    assert said in health.output
    mails = smtp_server.texts()
    assert any("integration health" in t for t in mails)          # the checks were still emailed
    alerts = [t for t in mails if "Failing part:</b> publish share" in t]
    assert {"afterschool_sync", "integration_health"} <= {d for t in alerts for d in ("afterschool_sync",
                                                                                    "integration_health") if d in t}
    assert all(f"Publish failed: the publish folder file://{missing} is missing" in t for t in alerts), alerts


def test_the_demo_mailbox_district_and_export_are_owner_only_whatever_the_umask(tmp_path):
    import smtplib

    from calpads.demo import cli, mailbox

    old = os.umask(0o022)
    try:
        assert cli.main(["--url", f"sqlite:///{tmp_path}/demo/sis.db", "--students", "40", "--academic-year", YEAR,
                         "--afterschool-dir", str(tmp_path / "demo" / "afterschool")]) == 0
        controller = mailbox.start(tmp_path / "demo" / "mail")
        try:
            with smtplib.SMTP("127.0.0.1", controller.port) as smtp:
                smtp.sendmail("a@district.example", ["b@district.example"], "Subject: x\r\n\r\nrecord 1001.1\r\n")
        finally:
            controller.stop()
    finally:
        os.umask(old)
    files = {p.relative_to(tmp_path / "demo").as_posix() for p in (tmp_path / "demo").rglob("*") if p.is_file()}
    assert {"sis.db", "afterschool/attendance.csv", "afterschool/registrations.csv"} <= files
    assert any(f.startswith("mail/") and f.endswith(".eml") for f in files)
    opened = too_open(tmp_path / "demo", group=False)
    opened.pop(str(tmp_path / "demo"), None)    # the test's own folder
    assert not opened


def test_the_scripts_make_airflow_task_logs_owner_only(tmp_path):
    """scripts/env.sh sets [logging] file_task_handler_new_file_permissions / _folder_permissions: a task log that
    Airflow creates (as a worker does for each try) is then 0600 in a 0700 folder under umask 022. (Airflow gives
    the mode to the last folder only: the dag_id=/run_id= levels follow the umask, which is why the scripts make
    the log folder itself 0700.)"""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = ("import os; os.umask(0o022); from airflow.sdk.log import init_log_file; "
            "print(init_log_file('dag_id=calpads_sprg/run_id=manual__x/task_id=extract/attempt=1.log'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__LOGGING__")}
    env.update(AIRFLOW_HOME=str(tmp_path / "home"), DEMO_DIR=str(tmp_path / "demo"))
    out = subprocess.run(["bash", "-c", f'source "{root}/scripts/env.sh" && '
                          f'AIRFLOW__LOGGING__BASE_LOG_FOLDER="{tmp_path}/logs" "{sys.executable}" -c "{code}"'],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    log_file = Path(out.stdout.strip().splitlines()[-1])
    assert log_file.is_file() and log_file.is_relative_to(tmp_path / "logs")
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700
