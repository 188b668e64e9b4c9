"""DAG policies every DAG of dags/ follows (in the style of mozilla/telemetry-airflow's
tests/dags/test_dag_validity.py): an owner, tags from the one enum (calpads_airflow.tags.DagTag), docs that
say what the DAG does and what to do when it fails, the failure alert on every task, display names."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag

from calpads_airflow.notifiers import CalpadsFailureNotifier
from calpads_airflow.runtime import OWNER
from calpads_airflow.tags import LEA_TAG_PREFIX, DagTag
from tests.conftest import ROOT

# The doc_md headings that open the "what to do when this fails" section (one of them is required).
FAILURE_SECTIONS = ("**When you get an alert.**", "**When a check fails**")
# Tasks that run without the failure alert, and why: each only turns the run red after another task failed,
# and that task already sent the alert.
WATCHERS = {"run_outcome"}


LEA_FILE = ROOT / "tests" / "fixtures" / "leas_three.yaml"


@pytest.fixture(scope="module", params=["one LEA", "three listed LEAs", "three LEAs from a Variable"])
def dagbag(request) -> DagBag:
    """Every DAG of a single-LEA deployment, and of one whose LEA file (or Variable) lists three LEAs."""
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "three listed LEAs":
            mp.setenv("AIRFLOW__CALPADS__LEAS_FILE", str(LEA_FILE))
        elif request.param == "three LEAs from a Variable":
            mp.setenv("AIRFLOW__CALPADS__LEAS_VARIABLE", "calpads_leas")
            mp.setenv("AIRFLOW_VAR_CALPADS_LEAS", LEA_FILE.read_text())
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def dags(bag: DagBag) -> list:
    assert len(bag.dags) >= 9, sorted(bag.dags)
    return [bag.dags[dag_id] for dag_id in sorted(bag.dags)]


def lea_codes(bag: DagBag) -> set[str]:
    return {dag_id.rpartition("__")[2] for dag_id in bag.dags if "__" in dag_id}


def test_every_dag_has_the_owner_on_every_task(dagbag):
    for dag in dags(dagbag):
        assert dag.owner == OWNER, dag.dag_id
        assert all(t.owner == OWNER for t in dag.tasks), dag.dag_id


def test_tags_come_from_the_one_enum(dagbag):
    valid = {t.value for t in DagTag} | {f"{LEA_TAG_PREFIX}{code}" for code in lea_codes(dagbag)}
    for dag in dags(dagbag):
        assert DagTag.CALPADS in dag.tags, dag.dag_id
        assert set(dag.tags) <= valid, f"{dag.dag_id}: tags not in calpads_airflow.tags.DagTag: {set(dag.tags) - valid}"


def test_docs_say_what_the_dag_does_and_what_to_do_when_it_fails(dagbag):
    for dag in dags(dagbag):
        doc = dag.doc_md or ""
        assert "**What it does.**" in doc, dag.dag_id
        assert any(heading in doc for heading in FAILURE_SECTIONS), f"{dag.dag_id}: no failure section in doc_md"
        section = doc[min(doc.index(h) for h in FAILURE_SECTIONS if h in doc):]
        assert len(section.split()) >= 15, f"{dag.dag_id}: the failure section says too little"


def test_every_task_alerts_on_failure_except_the_watchers(dagbag):
    for dag in dags(dagbag):
        for t in dag.tasks:
            callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
            alerting = any(isinstance(c, CalpadsFailureNotifier) for c in callbacks)
            assert alerting != (t.task_id in WATCHERS), (dag.dag_id, t.task_id)


def test_dags_and_tasks_have_display_names(dagbag):
    for dag in dags(dagbag):
        assert dag.dag_display_name and dag.dag_display_name != dag.dag_id, dag.dag_id
        for t in dag.tasks:
            assert t.task_display_name and t.task_display_name != t.task_id, (dag.dag_id, t.task_id)


def asset_uris(timetable) -> set[str]:
    condition = getattr(timetable, "asset_condition", None)
    return {a.uri for a in condition.objects} if condition is not None else set()   # AssetAll of Assets


def test_a_listed_lea_gets_its_own_dags_and_the_single_lea_none(dagbag):
    file_dags = sorted(d for d in dagbag.dags if d.startswith("calpads_") and d.split("__")[0] in (
        "calpads_sprg", "calpads_senr", "calpads_stas", "calpads_leap"))
    if not lea_codes(dagbag):
        assert file_dags == ["calpads_leap", "calpads_senr", "calpads_sprg", "calpads_stas"]
        return
    # The LEA file: Alder and Birch submit every file, Cedar SPRG and SENR only; no unscoped file DAG is left.
    assert file_dags == sorted([f"calpads_{f}__{code}" for code in ("5610001", "5610002")
                                for f in ("sprg", "senr", "stas", "leap")]
                               + ["calpads_sprg__5610003", "calpads_senr__5610003"])
    # Each LEA its own afterschool sync and checks; a nightly SIS pull for the two on SQL (Cedar reads PowerSchool's
    # API); none of the single LEA's; the deployment-wide DAGs once.
    per_lea = sorted([f"{d}__{code}" for code in ("5610001", "5610002", "5610003")
                      for d in ("afterschool_sync", "integration_health")]
                     + [f"sis_nightly_pull__{code}" for code in ("5610001", "5610002")])
    assert sorted(set(dagbag.dags) - set(file_dags)) == sorted(per_lea + ["calpads_deadline_watch",
                                                                          "calpads_maintenance"])
    cedar = dagbag.dags["calpads_sprg__5610003"]
    assert f"{LEA_TAG_PREFIX}5610003" in cedar.tags and "Cedar Charter Academy" in cedar.dag_display_name
    extract = cedar.get_task("extract_records")
    assert extract.pool == "sis__sis_powerschool_5610003" and extract.queue == "lea_5610003"
    assert cedar.timetable.expression == "0 2 * * *"      # no nightly pull of its own: its cron only
    birch = dagbag.dags["calpads_sprg__5610002"]
    assert birch.get_task("extract_records").pool == "sis__sis_db_5610002"
    # its own SPRG schedule (the rest keep the default), or a fresh pull of its own SIS assets
    assert birch.timetable.timetable.expression == "30 3 * * *"
    assert dagbag.dags["calpads_senr__5610002"].timetable.timetable.expression == "0 2 * * *"
    assert asset_uris(birch.timetable) == {"calpads://sis/5610002/enrollment", "calpads://sis/5610002/programs"}
    assert "calpads://afterschool/5610002/exports" in asset_uris(dagbag.dags["calpads_leap__5610002"].timetable)
    pull = dagbag.dags["sis_nightly_pull__5610002"]
    assert {a.uri for t in pull.tasks for a in t.outlets} == {
        f"calpads://sis/5610002/{kind}" for kind in ("enrollment", "programs", "attendance")}
    assert dagbag.dags["afterschool_sync__5610002"].get_task("import_attendance").outlets[0].uri == \
        "calpads://afterschool/5610002/exports"


def test_a_listed_leas_afterschool_and_health_dags_are_its_own(dagbag):
    if not lea_codes(dagbag):
        return
    for dag_id in ("afterschool_sync__5610003", "integration_health__5610003"):
        dag = dagbag.dags[dag_id]
        assert f"{LEA_TAG_PREFIX}5610003" in dag.tags and "Cedar Charter Academy" in dag.dag_display_name
        assert all(t.queue == "lea_5610003" for t in dag.tasks), dag_id        # its Celery queue
        notifiers = [c for t in dag.tasks for c in (t.on_failure_callback or [])
                     if isinstance(c, CalpadsFailureNotifier)]
        assert notifiers and {n.lea_code for n in notifiers} == {"5610003"}   # its own team's alerts
        assert "`sis_db` | `sis_powerschool_5610003` (powerschool_api)" in dag.doc_md
    assert dagbag.dags["afterschool_sync__5610002"].timetable.expression == "0 3 * * *"
    assert "coordinator@birch.example" in dagbag.dags["integration_health__5610002"].doc_md


def test_a_broken_lea_file_shows_its_problems_as_import_errors_in_the_ui(tmp_path, monkeypatch):
    broken = tmp_path / "leas.yaml"
    broken.write_text(LEA_FILE.read_text().replace('code: "5610002"', 'code: "561002"'))
    monkeypatch.setenv("AIRFLOW__CALPADS__LEAS_FILE", str(broken))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not any("__" in dag_id for dag_id in bag.dags)    # no LEA runs on a file that is wrong
    shard_errors = [e for path, e in bag.import_errors.items() if "calpads_leas_" in path]
    assert len(shard_errors) == 16
    assert all("LEA entry 2: code must be the LEA's 7-digit CDS code" in e for e in shard_errors)


def test_every_task_puts_its_run_first_so_many_leas_finish_one_by_one(dagbag):
    # docs/performance.md, "Many LEAs": with the default (downstream) every LEA's files were ready only at the end.
    for dag in dags(dagbag):
        assert {str(t.weight_rule) for t in dag.tasks} == {"upstream"}, dag.dag_id
