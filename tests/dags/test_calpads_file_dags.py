"""`airflow dags test` of every CALPADS file DAG on the demo district publishes its file; the nightly SIS pull
updates its assets; a new layout with a builder gives a working DAG with no change to the factory, pipeline,
registry or GX configuration. The file DAGs and the nightly pull share one `airflow dags test` process (one
Airflow start-up), each in its own folders."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.dags.dagrun import DagRunRequest, DagRunResult, project_env, run_dag, run_dags

pytestmark = pytest.mark.dag


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from calpads.demo.generator import generate_district

    folder = tmp_path_factory.mktemp("demo")
    eng = sa.create_engine(f"sqlite:///{folder}/sis.db")
    generate_district(eng, students=1200, seed=7, dirty=0.0, afterschool_dir=folder / "afterschool",
                      log=lambda _m: None)
    eng.dispose()
    return folder


def env_for(airflow_home: Path, demo: Path, tmp_path: Path, smtp_port: int) -> dict[str, str]:
    env = project_env(airflow_home, sis_url=f"sqlite:///{demo}/sis.db", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_port)
    return env


def stage_afterschool(demo: Path, tmp_path: Path) -> None:
    """What afterschool_sync's import does: gate and stage the export in the store, where LEAP and STAS read it."""
    from datetime import date

    from calpads.afterschool.sis_data import SqlReader
    from calpads.afterschool.stages import AfterschoolRun, import_export

    (tmp_path / "as_pub").mkdir(exist_ok=True)   # the publish root is a mounted share: a run never creates it
    run = AfterschoolRun("afterschool_sync", "manual__import", "2025-2026", date(2026, 6, 20), tmp_path / "as",
                         tmp_path / "as_pub")
    folder = demo / "afterschool"
    import_export(run, SqlReader(sa.create_engine(f"sqlite:///{demo}/sis.db")),
                  sa.create_engine(f"sqlite:///{tmp_path}/store.db"), (folder / "attendance.csv").read_bytes(),
                  "attendance.csv", registrations=((folder / "registrations.csv").read_bytes(), "registrations.csv",
                                                   ""))


FILE_DAGS = [("calpads_sprg", "SPRG", 25), ("calpads_senr", "SENR", 35), ("calpads_stas", "STAS", 24),
             ("calpads_leap", "LEAP", 13)]


@pytest.fixture(scope="module")
def demo_runs(airflow_home, demo, tmp_path_factory) -> Iterator[dict[str, tuple[DagRunResult, Path, dict]]]:
    """Each file DAG (in its own folder: store, work and publish roots, mail server) and sis_nightly_pull on the
    demo district, as `airflow dags test` runs in one process (tests/dags/dagrun.run_dags); by dag_id:
    (result, folder, env)."""
    from calpads.demo.mailbox import start

    with ExitStack() as stack:
        planned: dict[str, tuple[DagRunRequest, Path]] = {}
        for dag_id, record_type, _fields in [*FILE_DAGS, ("sis_nightly_pull", None, None)]:
            tmp = tmp_path_factory.mktemp(dag_id)
            controller = start(tmp / "mail", port=0)
            stack.callback(controller.stop)
            env = env_for(airflow_home, demo, tmp, controller.port)
            if record_type in ("LEAP", "STAS"):
                stage_afterschool(demo, tmp)
            date, conf = ("2026-06-21", {}) if record_type is None else ("2026-06-20", {"academic_year": "2025-2026"})
            planned[dag_id] = (DagRunRequest(env, dag_id, date, conf), tmp)
        results = run_dags([req for req, _tmp in planned.values()])
        yield {dag_id: (result, tmp, req.env) for (dag_id, (req, tmp)), result in zip(planned.items(), results,
                                                                                        strict=True)}


@pytest.mark.parametrize(("dag_id", "record_type", "fields"), FILE_DAGS)
def test_file_dag_publishes_its_file_on_the_demo_district(demo_runs, dag_id, record_type, fields):
    result, tmp_path, _env = demo_runs[dag_id]
    assert result.state == "success", result.output[-4000:]
    folder = next((tmp_path / "pub" / "2025-2026" / record_type).iterdir())
    full = folder / f"{record_type}_5699999_2025-2026.txt"
    lines = full.read_text().splitlines()
    assert len(lines) > 10 and all(len(ln.split("^")) == fields for ln in lines)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"]["records_in_full_file"] == len(lines)
    if record_type == "LEAP":
        assert (folder / "report" / "leap_days_vs_school.csv").exists()


def test_sis_nightly_pull_updates_the_assets(demo_runs):
    result, _tmp_path, env = demo_runs["sis_nightly_pull"]
    assert result.state == "success", result.output[-4000:]
    assert set(result.task_states.values()) == {"success"}
    import sqlite3

    con = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        uris = {r[0] for r in con.execute("SELECT a.uri FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                                          "WHERE e.source_dag_id = 'sis_nightly_pull'")}
    finally:
        con.close()
    # the afterschool asset is afterschool_sync's (it updates it once it has staged the export)
    assert uris == {"calpads://sis/district/enrollment", "calpads://sis/district/attendance",
                    "calpads://sis/district/programs"}


NEW_LAYOUT = """
record_type: XTST
title: Test-only record type
processing: replacement
level: lea
spec_version: "test"
builder: "xtst_builder:RECORD_TYPE"
operational_keys: [reporting_lea, ssid]
sort_by: [local_student_id]
fields:
  - {number: "99.01", name: Record Type Code, column: record_type, max_length: 4, type: code, required: true,
     fixed: XTST}
  - {number: "99.02", name: Transaction Type Code, column: transaction_type, max_length: 1, type: code,
     code_set: transaction_types}
  - {number: "99.03", name: Reporting LEA, column: reporting_lea, max_length: 7, type: cds_code, required: true}
  - {number: "99.04", name: SSID, column: ssid, max_length: 10, type: ssid, required: true}
  - {number: "99.05", name: Local Student ID, column: local_student_id, max_length: 15, type: text, required: true}
  - {number: "99.06", name: Local Record ID, column: local_record_id, max_length: 255, type: text, required: true,
     confirmed: false, source: "test"}
"""
NEW_BUILDER = '''
"""Test-only builder: one record per student with an SSID, from the staged tables."""
import pandas as pd

from calpads.extracts.registry import Built, RecordTypeSpec
from calpads.extracts.selection import reporting_lea
from calpads.staging import contract


def build(staged, scope, context):
    lea = reporting_lea(staged.frame(contract.PREFS))
    s = staged.frame(contract.STUDENTS)
    df = s[s["state_studentnumber"].notna()]
    records = pd.DataFrame({"record_type": "XTST", "transaction_type": None, "reporting_lea": lea,
                            "ssid": df["state_studentnumber"].astype(str), "local_student_id": df["student_number"],
                            "local_record_id": df["id"].astype(str)}).astype(object)
    return Built(records, pd.DataFrame(columns=["local_record_id", "local_student_id", "school_of_attendance",
                                                "reason"]), lea, [])


# the staged tables it reads (the staging gate checks PREFS, SCHOOLS and STUDENTS of every record type)
RECORD_TYPE = RecordTypeSpec((contract.PREFS, contract.SCHOOLS, contract.STUDENTS), build)
'''


def test_a_new_layout_with_a_builder_yields_a_working_dag(airflow_home, demo, tmp_path, smtp_server):
    """Only new files: a layout YAML (naming its builder), the builder module, a 3-line DAG file, and the suite
    the suite builder generates (it also registers the GX dataframe asset)."""
    from calpads.quality import suite_builder

    layouts, code, dags, gx = tmp_path / "layouts", tmp_path / "code", tmp_path / "dags", tmp_path / "gx"
    for d in (layouts, code, dags):
        d.mkdir()
    (layouts / "xtst.yaml").write_text(NEW_LAYOUT)
    (code / "xtst_builder.py").write_text(textwrap.dedent(NEW_BUILDER))
    (dags / "calpads_xtst.py").write_text('"""Airflow DAG."""\n'
                                          'from calpads_airflow.factories.file_dag import build_calpads_dag\n\n'
                                          'dag = build_calpads_dag("XTST")\n')
    shutil.copytree(ROOT / "great_expectations", gx, ignore=shutil.ignore_patterns("uncommitted"))
    (gx / "uncommitted").mkdir()
    variables = ROOT / "great_expectations" / "uncommitted" / "config_variables.yml"
    if variables.exists():  # GX writes it on first use; a fresh clone has none
        shutil.copy(variables, gx / "uncommitted")
    import os

    os.environ["CALPADS_LAYOUTS_DIR"] = str(layouts)
    try:
        from calpads.layouts import load_layout

        load_layout.cache_clear()
        suite_builder.write_suite("XTST", gx)
    finally:
        del os.environ["CALPADS_LAYOUTS_DIR"]
        load_layout.cache_clear()
    env = env_for(airflow_home, demo, tmp_path, smtp_server.port)
    env.update({"CALPADS_LAYOUTS_DIR": str(layouts), "CALPADS_GX_ROOT": str(gx),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "PYTHONPATH": f"{env['PYTHONPATH']}:{code}"})
    result = run_dag(env, "calpads_xtst", "2026-06-22", {"academic_year": "2025-2026"})
    assert result.state == "success", (result.task_states, result.output[-4000:])
    folder = next((tmp_path / "pub" / "2025-2026" / "XTST").iterdir())
    lines = (folder / "XTST_5699999_2025-2026.txt").read_text().splitlines()
    assert len(lines) > 100 and all(ln.startswith("XTST^^5699999^") and len(ln.split("^")) == 6 for ln in lines)
