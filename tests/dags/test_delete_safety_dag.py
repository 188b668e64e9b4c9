"""Delete safety and strict scope in real `airflow dags test` runs: a delete of a student still enrolled stops the
run before anything is published and the emails name the record; allow_enrolled_deletes lets it go, and the
summary email counts it per program and school. A sub-district typo fails at "Check run parameters" with the
known sub-districts listed; an academic year out of range is refused by the params form's own validation."""

from __future__ import annotations

import html
import json

import pytest
import sqlalchemy as sa

from tests.dags.dagrun import project_env, run_dag
from tests.unit.sis_fixtures import Sis

pytestmark = pytest.mark.dag
YEAR = "2025-2026"


def district(path) -> Sis:
    """Ten students at school 100 (CDS 7654321, sub-district North), program 101 each (ID 500 + student),
    and school 200 (7654322, South) without students."""
    sis = Sis(sa.create_engine(f"sqlite:///{path}"))
    sis.add_school(100, "7654321", subdistrict="North")
    sis.add_school(200, "7654322", subdistrict="South")
    for s in range(1, 11):
        sis.add_student(s, first=f"Fn{s}", last=f"Ln{s}")
        sis.add_program(s, 100, "101", start="2025-09-02", program_id=500 + s)
    return sis


def test_a_delete_of_an_enrolled_student_stops_the_run_until_allowed(airflow_home, tmp_path, smtp_server):
    sis = district(tmp_path / "sis.db")
    env = project_env(airflow_home, sis_url=f"sqlite:///{tmp_path}/sis.db", store_url=f"sqlite:///{tmp_path}/st.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    first = run_dag(env, "calpads_sprg", "2026-03-09", {"academic_year": YEAR, "save_history": True})
    assert first.state == "success", first.output[-3000:]

    # Student 3 is still enrolled; the program row is removed. 1 delete of 10 is under the 20% mass-delete share.
    with sis.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM S_CA_STU_CALPADSPROGRAMS_C WHERE ID = 503")
    second = run_dag(env, "calpads_sprg", "2026-03-10", {"academic_year": YEAR, "save_history": True})
    assert second.task_states["diff_against_history"] == "failed", (second.task_states, second.output[-6000:])
    assert second.task_states["publish_files"] == "upstream_failed" and second.state == "failed"
    assert not list((tmp_path / "pub" / YEAR / "SPRG" / second.run_id).glob("*.txt"))
    failure = next(t for t in smtp_server.texts() if "FAILED" in t and "diff_against_history" in t)
    assert "3.503 (Local Student ID 100003, program 101 at school 7654321: no longer extracted" in failure
    assert "allow_enrolled_deletes: true" in failure
    summary = next(t for t in smtp_server.texts() if second.run_id in t and "FAILED" not in t)
    assert "would delete <b>1</b> record(s) from CALPADS and was stopped" in summary
    assert "Per program: 101: 1" in summary and "Per school: 7654321: 1" in summary
    for text in smtp_server.texts():
        assert "Fn3" not in text and "Ln3" not in text and "1000000003" not in text

    third = run_dag(env, "calpads_sprg", "2026-03-11",
                    {"academic_year": YEAR, "save_history": True, "allow_enrolled_deletes": True})
    assert third.state == "success", third.output[-3000:]
    folder = tmp_path / "pub" / YEAR / "SPRG" / third.run_id
    assert [ln.split("^")[1:3] for ln in (folder / f"SPRG_1234567_{YEAR}_D.txt").read_text().splitlines()] == [
        ["D", "3.503"]]
    assert json.loads((folder / "manifest.json").read_text())["counts"]["diff"]["deletes"]["by_school"] == {
        "7654321": 1}
    summary = next(t for t in smtp_server.texts() if third.run_id in t)
    assert "1 deletes" in summary and "This run deletes <b>1</b> record(s) from CALPADS" in summary


def test_a_subdistrict_typo_or_an_impossible_year_stops_the_run_before_the_pull(airflow_home, tmp_path,
                                                                                smtp_server):
    district(tmp_path / "sis.db")
    env = project_env(airflow_home, sis_url=f"sqlite:///{tmp_path}/sis.db", store_url=f"sqlite:///{tmp_path}/st.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    typo = run_dag(env, "calpads_sprg", "2026-03-12",
                   {"academic_year": YEAR, "subdistricts": ["Nort"], "allow_mass_delete": True})
    assert typo.task_states["check_params"] == "failed", (typo.task_states, typo.output[-6000:])
    assert typo.task_states["extract_records"] == "upstream_failed"
    mail = html.unescape(next(t for t in smtp_server.texts() if "check_params" in t))
    assert "subdistricts: 'Nort' is not a sub-district" in mail and "'North', 'South'" in mail
    assert not (tmp_path / "st.db").exists(), "the pull ran (the staging gate opened the store)"

    year = run_dag(env, "calpads_sprg", "2026-03-13", {"academic_year": "9998-9999"})
    assert year.returncode != 0
    assert "ParamValidationError" in year.output and "academic_year" in year.output, year.output[-3000:]
    assert "extract_records" not in year.task_states or year.task_states["extract_records"] != "success"
    assert not list((tmp_path / "pub").rglob("*")), "the refused run wrote to the publish share"
