"""Every DAG imports, has docs, owners, tags, retries and the failure alert; its params validate."""

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "calpads_sprg" in dagbag.dags


def test_every_dag_is_documented_owned_tagged_and_alerting(dagbag):
    from calpads_airflow.notifiers import CalpadsFailureNotifier

    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and "What it does" in dag.doc_md, dag_id
        assert dag.tags and "calpads" in dag.tags, dag_id
        assert dag.max_active_runs == 1, dag_id
        for t in dag.tasks:
            if t.task_id == "run_outcome":  # the watcher only mirrors other failures: no second email
                continue
            assert t.owner == "integration-team", (dag_id, t.task_id)
            callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
            assert any(isinstance(c, CalpadsFailureNotifier) for c in callbacks), (dag_id, t.task_id)
            assert t.task_display_name and t.task_display_name != t.task_id, (dag_id, t.task_id)


def test_sprg_schedule_is_nightly_pacific_by_default(dagbag):
    tt = dagbag.dags["calpads_sprg"].timetable
    tt = getattr(tt, "timetable", tt)   # AssetOrTimeSchedule (calpads.assets): its own cron inside
    assert tt.expression == "0 2 * * *"
    assert str(tt.timezone) in ("America/Los_Angeles", "Timezone('America/Los_Angeles')")


def test_params_have_descriptions_and_defaults_that_validate(dagbag):
    dag = dagbag.dags["calpads_sprg"]
    expected = {"academic_year", "start_date", "end_date", "submission", "programs", "mode", "save_history",
                "schools", "subdistricts", "students", "bypass_validation", "ods_file",
                "allow_mass_delete", "allow_enrolled_deletes"}
    assert set(dag.params.keys()) == expected
    for name in expected:
        param = dag.params.get_param(name)
        assert param.description, name
        param.resolve()  # the default is valid against its own schema
    assert dag.params["mode"] == "submission" and dag.params["save_history"] is False


def test_injection_through_the_schools_param_is_rejected_by_param_validation(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    param = dagbag.dags["calpads_sprg"].params.get_param("schools")
    with pytest.raises(ParamValidationError):
        param.resolve(["0000001' OR 1=1 --"])
