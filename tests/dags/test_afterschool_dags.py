"""afterschool_sync, integration_health and calpads_deadline_watch through `airflow dags test`, on the demo
district and its generated afterschool export: a run with the default (scheduled) write mode writes when the
district's setting says so, summer sessions included; a second run changes nothing; the health checks compare a
test LEAP extract with the SIS and name the planted faults; emails go to the roles' lists."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from calpads.afterschool.sis_migrate import migrate
from tests.dags.dagrun import project_env, run_dag

pytestmark = pytest.mark.dag


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from calpads.demo.generator import generate_district

    folder = tmp_path_factory.mktemp("demo")
    engine = sa.create_engine(f"sqlite:///{folder}/sis.db")
    generate_district(engine, students=400, seed=7, academic_year="2025-2026", afterschool_dir=folder / "drop")
    migrate(engine, apply=True)          # the district's DBA adds the participation table
    engine.dispose()
    return folder


def expected_written(drop, sis_db: str) -> tuple[int, int]:
    """(rows afterschool_sync should write, July rows among them), worked out from the export and the SIS by the
    import rules the demo plants faults for: unknown student numbers, and a student's date and program sent twice
    with different values (every such row is held back)."""
    import csv
    from collections import Counter

    con = sqlite3.connect(sis_db)
    try:
        known = {r[0] for r in con.execute("SELECT STUDENT_NUMBER FROM STUDENTS")}
    finally:
        con.close()
    with open(drop / "attendance.csv") as fh:
        rows = list(csv.DictReader(fh))
    versions = Counter((r["student_number"], r["session_date"], r["program"]) for r in rows)
    good = [r for r in rows if r["student_number"] in known
            and versions[(r["student_number"], r["session_date"], r["program"])] == 1]
    return len(good), sum(r["session_date"].startswith("2025-07") for r in good)


def count(db: str, sql: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_scheduled_write_back_writes_once_and_health_checks_leap_against_the_sis(airflow_home, demo, tmp_path,
                                                                               smtp_server):
    env = project_env(airflow_home, sis_url=f"sqlite:///{demo}/sis.db", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    env["AIRFLOW_VAR_AFTERSCHOOL_DROP_PATH"] = str(demo / "drop")
    env["AIRFLOW__CALPADS__HEALTH_DAGS"] = "afterschool_sync"
    env["AIRFLOW_VAR_AFTERSCHOOL_WRITE_MODE"] = "write"           # the district turned scheduled write-back on
    env["AIRFLOW_VAR_AFTERSCHOOL_STAFF_EMAILS"] = "afterschool@district.example"
    env["AIRFLOW_VAR_IT_EMAILS"] = "it@district.example"
    conf = {"academic_year": "2025-2026"}                          # write_mode left at its default, as scheduled
    want, july = expected_written(demo / "drop", f"{demo}/sis.db")
    assert july > 0                                                # the demo's summer ELO-P sessions

    first = run_dag(env, "afterschool_sync", "2026-06-30", conf)
    assert first.state == "success", first.output[-4000:]
    sis_db = f"{demo}/sis.db"
    assert count(sis_db, "SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION") == want
    assert count(sis_db, "SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION WHERE PARTICIPATION_DATE < '2025-08-01'") \
        == july
    store = f"{tmp_path}/store.db"
    assert count(store, "SELECT count(*) FROM afterschool_writeback_audit WHERE status = 'done'") == want
    assert count(store, "SELECT count(*) FROM afterschool_writeback_runs WHERE write_mode = 'write'") == 1

    second = run_dag(env, "afterschool_sync", "2026-07-01", conf)
    assert second.state == "success", second.output[-4000:]
    assert count(sis_db, "SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION") == want
    assert count(store, "SELECT count(*) FROM afterschool_writeback_audit") == want
    assert count(store, "SELECT count(*) FROM afterschool_imports") == 1
    held = sum(1 for _ in open(demo / "drop" / "attendance.csv")) - 1 - want
    summary = [m for m in smtp_server.messages if "afterschool_sync 2025-2026" in (m["Subject"] or "")]
    assert summary and f"{held} rows held back" in summary[0]["Subject"]
    assert "afterschool@district.example" in summary[0]["To"]      # held-back rows: the afterschool staff's to fix
    assert not any("1000000" in t and "ssid" in t.lower() for t in smtp_server.texts())

    health = run_dag(env, "integration_health", "2026-07-01", {"academic_year": "2025-2026"})
    # the planted faults (held-back rows) fail the all-students spot-check; LEAP agrees with the SIS
    assert health.state == "failed" and health.task_states["email_summary"] == "success", health.output[-4000:]
    mail = next(m for m in smtp_server.messages if "integration health" in (m["Subject"] or ""))
    text = next(t for t in smtp_server.texts() if "integration health" in t)
    assert "<td>PASS</td><td>Test LEAP extract (non_submission)</td>" in text
    assert "<td>PASS</td><td>Test LEAP extract: Expanded Learning Program Days match the SIS, per student</td>" \
        in text
    assert "<td>FAIL</td><td>All students: afterschool days per month, platform vs SIS</td>" in text
    assert "held_back" in text and "(data quality)" in text
    assert {"it@district.example", "afterschool@district.example"} <= {a.strip() for a in mail["To"].split(",")}
    assert (tmp_path / "pub" / "integration" / "data_flows.html").exists()
    assert (tmp_path / "pub" / "integration" / "health.json").exists()

    watch = run_dag(env, "calpads_deadline_watch", "2026-07-06", {"as_of": "2026-07-06"})
    assert watch.state == "success", watch.output[-4000:]
    assert any("deadline watch: End of Year 1 2025-2026 (25 days)" in t for t in smtp_server.texts())

    con = sqlite3.connect(f"{env['AIRFLOW_HOME']}/airflow.db")
    try:
        uris = {r[0] for r in con.execute("SELECT a.uri FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                                          "WHERE e.source_dag_id = 'afterschool_sync'")}
    finally:
        con.close()
    assert uris == {"calpads://afterschool/district/exports"}     # LEAP and STAS wait for the staged export


def test_integration_health_fails_when_data_is_missing(airflow_home, demo, tmp_path, smtp_server):
    # a fresh store: nothing imported from the platform, and afterschool_sync never ran in this store
    env = project_env(airflow_home, sis_url=f"sqlite:///{demo}/sis.db", store_url=f"sqlite:///{tmp_path}/empty.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    env["AIRFLOW__CALPADS__HEALTH_DAGS"] = "never_ran_dag"
    result = run_dag(env, "integration_health", "2026-07-02", {"academic_year": "2025-2026"})
    assert result.state == "failed" and result.task_states["run_outcome"] == "failed"
    assert result.task_states["email_summary"] == "success"
    mail = next(t for t in smtp_server.texts() if "integration health" in t)
    assert "No afterschool attendance has been imported" in mail
    assert "never_ran_dag has never finished successfully" in mail
    # the test LEAP extract says afterschool_sync has to run first
    assert "The test extract failed at the extract step: The LEAP file needs the afterschool platform" in mail
    assert "Run afterschool_sync for 2025-2026" in mail
