"""A failing task emails the integration team through smtp_default (a real local SMTP server)."""

import pytest

from tests.dags.dagrun import project_env, run_dag

pytestmark = pytest.mark.dag


def test_unreachable_sis_fails_the_run_and_emails_the_team(airflow_home, tmp_path, smtp_server):
    env = project_env(airflow_home, sis_url=f"sqlite:///{tmp_path}/missing/sis.db",
                      store_url=f"sqlite:///{tmp_path}/store.db", publish_root=tmp_path / "pub",
                      work_root=tmp_path / "work", smtp_port=smtp_server.port, emails="team@district.example")
    result = run_dag(env, "calpads_sprg", "2026-03-02", {"academic_year": "2025-2026"})
    assert result.state == "failed", result.output[-3000:]
    assert result.task_states["check_params"] == "success"
    assert result.task_states["extract_records"] == "failed"
    texts = smtp_server.texts()
    assert any("extract_records" in t and "FAILED" in t for t in texts), texts
    msg = next(t for t in smtp_server.texts() if "extract_records" in t)
    assert "ask district IT" in msg
    assert smtp_server.messages[0]["To"] == "team@district.example"
    # nothing was published
    assert not list((tmp_path / "pub").rglob("*.txt"))


def test_bad_params_fail_before_any_work_and_say_which_param(airflow_home, tmp_path, smtp_server):
    env = project_env(airflow_home, sis_url=f"sqlite:///{tmp_path}/sis.db", store_url=f"sqlite:///{tmp_path}/s.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    result = run_dag(env, "calpads_sprg", "2026-03-03", {"academic_year": "2025-2026", "end_date": "2027-01-01"})
    assert result.state == "failed"
    assert result.task_states.get("check_params") == "failed"
    assert result.task_states.get("extract_records") in ("upstream_failed", None)
    assert any("not inside academic year" in t for t in smtp_server.texts())
