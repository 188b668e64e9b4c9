"""afterschool_sync, integration_health and calpads_deadline_watch through `airflow dags test`, on the demo
district and its generated afterschool export: the write-back lands in the SIS, a second run changes
nothing, the health checks pass and then fail for the right reason when the data is missing."""

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


def count(db: str, sql: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_afterschool_sync_writes_once_and_health_passes(airflow_home, demo, tmp_path, smtp_server):
    env = project_env(airflow_home, sis_url=f"sqlite:///{demo}/sis.db", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    env["AIRFLOW_VAR_AFTERSCHOOL_DROP_PATH"] = str(demo / "drop")
    env["AIRFLOW__CALPADS__HEALTH_DAGS"] = "afterschool_sync"
    conf = {"academic_year": "2025-2026", "write_mode": "write"}
    sessions = sum(1 for _ in open(demo / "drop" / "attendance.csv")) - 1

    first = run_dag(env, "afterschool_sync", "2026-06-30", conf)
    assert first.state == "success", first.output[-4000:]
    written = count(f"{demo}/sis.db", "SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION")
    assert written == sessions - 2            # the two unknown student numbers are held back
    store = f"{tmp_path}/store.db"
    assert count(store, "SELECT count(*) FROM afterschool_writeback_audit WHERE status = 'done'") == written

    second = run_dag(env, "afterschool_sync", "2026-07-01", conf)
    assert second.state == "success", second.output[-4000:]
    assert count(f"{demo}/sis.db", "SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION") == written
    assert count(store, "SELECT count(*) FROM afterschool_writeback_audit") == written
    assert count(store, "SELECT count(*) FROM afterschool_imports") == 1
    texts = smtp_server.texts()
    assert any("afterschool_sync 2025-2026: 2 rows held back" in t for t in texts), texts
    assert not any("1000000" in t and "ssid" in t.lower() for t in texts)

    health = run_dag(env, "integration_health", "2026-07-01", {"academic_year": "2025-2026"})
    assert health.state == "success", health.output[-4000:]
    mail = next(t for t in smtp_server.texts() if "integration health" in t)
    assert "all checks pass" in mail and "Test SPRG extract" in mail
    assert (tmp_path / "pub" / "integration" / "data_flows.html").exists()

    watch = run_dag(env, "calpads_deadline_watch", "2026-07-06", {"as_of": "2026-07-06"})
    assert watch.state == "success", watch.output[-4000:]
    assert any("deadline watch: End of Year 1 2025-2026 (25 days)" in t for t in smtp_server.texts())


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
