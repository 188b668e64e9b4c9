"""The mass-delete guard in a real `airflow dags test` run: the diff task fails, nothing is published,
the team gets the failure email saying what to check and how to override; allow_mass_delete passes."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.dags.dagrun import project_env, run_dag
from tests.unit.sis_fixtures import Sis

pytestmark = pytest.mark.dag


def test_a_run_deleting_most_records_is_blocked_and_the_team_is_told(airflow_home, tmp_path, smtp_server):
    sis = Sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"))
    sis.add_school(100, "7654321")
    for s in range(1, 6):
        sis.add_student(s, first=f"F{s}", last=f"L{s}")
        sis.add_program(s, 100, "101", start="2025-09-02", program_id=500 + s)
    env = project_env(airflow_home, sis_url=f"sqlite:///{tmp_path}/sis.db", store_url=f"sqlite:///{tmp_path}/st.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    first = run_dag(env, "calpads_sprg", "2026-03-09", {"academic_year": "2025-2026", "save_history": True})
    assert first.state == "success", first.output[-3000:]

    # A bulk edit moved 4 of the 5 start dates (an operational key): 4 deletes of 5 (80% > 20%) + 4 adds.
    # (Program rows that vanish from the pull are caught earlier, by the extract's staging count check.)
    with sis.engine.begin() as c:
        c.exec_driver_sql("UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMSTARTDATE = '2025-09-03' WHERE ID < 505")
    second = run_dag(env, "calpads_sprg", "2026-03-10", {"academic_year": "2025-2026", "save_history": True})
    assert second.state == "failed", (second.task_states, second.output[-6000:])
    assert second.task_states["diff_against_history"] == "failed", (second.task_states, second.output[-6000:])
    assert second.task_states["publish_files"] == "upstream_failed"
    assert not list((tmp_path / "pub" / "2025-2026" / "SPRG" / second.run_id).glob("*.txt"))
    mail = next(t for t in smtp_server.texts() if "diff_against_history" in t)
    assert "would delete 4 of the 5 previously submitted records" in mail
    assert "allow_mass_delete: true" in mail and "SIS pull" in mail
    assert "calpads_store database" not in mail          # the cause's what-to-do, not the task's generic one
    assert "1000000001" not in mail and "L1" not in mail

    # The students are still enrolled and their start dates changed (the old keys' D): allow_enrolled_deletes too.
    third = run_dag(env, "calpads_sprg", "2026-03-11",
                    {"academic_year": "2025-2026", "save_history": True, "allow_mass_delete": True,
                     "allow_enrolled_deletes": True})
    assert third.state == "success", third.output[-3000:]
    manifest = json.loads((tmp_path / "pub" / "2025-2026" / "SPRG" / third.run_id / "manifest.json").read_text())
    assert manifest["counts"]["deletes"] == 4
