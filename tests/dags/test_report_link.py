"""The quality gate task's "Validation report" extra link survives DAG serialization (what the API server
reads) as an XCom-backed link; the summary email carries the same report link."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag

from calpads.alerts.messages import summary_email
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def sprg_dag():
    return DagBag(dag_folder=str(ROOT / "dags")).dags["calpads_sprg"]


def test_only_the_quality_gate_has_the_report_link(sprg_dag):
    from calpads_airflow.links import ValidationReportLink

    with_link = {t.task_id for t in sprg_dag.tasks
                 if any(isinstance(link, ValidationReportLink) for link in t.operator_extra_links)}
    assert with_link == {"quality_gate"}


def test_the_serialized_dag_names_the_link_and_its_xcom_key(sprg_dag):
    from airflow.serialization.serialized_objects import DagSerialization

    data = DagSerialization.to_dict(sprg_dag)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in data["dag"]["tasks"]}
    assert tasks["quality_gate"]["_operator_extra_links"] == {"Validation report": "_link_ValidationReportLink"}
    assert "_operator_extra_links" not in tasks["extract_records"]
    # what the API server gets back: a link read from that XCom, no plugin class needed
    task = DagSerialization.from_dict(data).get_task("quality_gate")
    assert task.extra_links == ["Validation report"]
    link = task.operator_extra_link_dict["Validation report"]
    assert type(link).__name__ == "XComOperatorLink" and link.xcom_key == "_link_ValidationReportLink"


def test_the_summary_email_links_the_report_and_says_when_nothing_was_published():
    url = "file:///srv/calpads/2025-2026/SPRG/manual__x/report/index.html"
    validation = {"records_checked": 100, "records_held_back": 9, "records_warned": 0, "ceiling": 0.05,
                  "ceiling_exceeded": True, "rules": {"SPRG-CPA-113": {"count": 9, "severity": "error",
                                                                       "rule_text": "t", "fix": "f"}}}
    subject, body = summary_email(dag_id="calpads_sprg", run_id="manual__x", validation=validation, published=None,
                                  report_link=url)
    assert f'<a href="{url}">{url}</a>' in body
    assert "<td>SPRG-CPA-113</td><td>error</td><td>9</td>" in body
    assert "nothing from this run was published" in body and "5% ceiling" in body
    _, ok_body = summary_email(dag_id="calpads_sprg", run_id="r", validation={**validation, "ceiling_exceeded": False},
                               published={"folder": "f", "files": ["a.txt"]}, report_link=url)
    assert "nothing from this run was published" not in ok_body and url in ok_body
