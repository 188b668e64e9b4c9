"""What a listed LEA's afterschool and health tasks read (calpads_airflow.runtime with an LEA): its own drop folder,
connection, write mode, SIS and store, never the single LEA's Variables; the single LEA's reading is unchanged."""

from __future__ import annotations

import pytest

from calpads.leas import LeaConfig, parse_leas
from calpads_airflow import runtime
from calpads_airflow.factories.health_config import health_dag_ids


def lea(code: str = "5610001", **extra) -> LeaConfig:
    return parse_leas({"leas": [{"code": code, "name": f"LEA {code}", "emails": {"team": [f"t@{code}.example"]},
                                 "sis": {"source": "sql", "conn_id": f"sis_db_{code}"}, **extra}]},
                      known_sources=("powerschool_api", "aeries_api")).leas[0]


@pytest.fixture
def single_lea_settings(monkeypatch, tmp_path):
    """The deployment's single-LEA Variables and settings, all pointing somewhere a listed LEA must not read."""
    monkeypatch.setenv("AIRFLOW_VAR_AFTERSCHOOL_DROP_PATH", str(tmp_path / "shared_drop"))
    monkeypatch.setenv("AIRFLOW_VAR_AFTERSCHOOL_WRITE_MODE", "write")
    monkeypatch.setenv("AIRFLOW__CALPADS__SIS_SOURCE", "powerschool_api")
    monkeypatch.setenv("AIRFLOW__CALPADS__HEALTH_DAGS",
                       "calpads_sprg,calpads_leap,afterschool_sync,calpads_maintenance")
    return tmp_path


def test_a_listed_leas_export_is_its_own_folder_or_connection(single_lea_settings):
    shared = single_lea_settings / "shared_drop"
    assert runtime.afterschool_drop(lea()) == (str(shared / "5610001"), True)     # its own sub-folder by default
    own = lea(afterschool={"drop_path": "/srv/drop/a"})
    assert runtime.afterschool_drop(own) == ("/srv/drop/a", True)
    http = lea(afterschool={"conn_id": "afterschool_api_5610001"})
    assert runtime.afterschool_drop(http)[1] is False and runtime.afterschool_conn_id(http) == "afterschool_api_5610001"
    assert runtime.afterschool_conn_id(lea()) is None                               # never afterschool_api
    # the single LEA: the Variable, and the afterschool_api connection, as before
    assert runtime.afterschool_drop(None) == (str(shared), True)
    assert runtime.afterschool_conn_id(None) == "afterschool_api"


def test_an_lea_without_a_connection_is_told_what_to_set(single_lea_settings):
    with pytest.raises(FileNotFoundError, match="LEA 5610001 has no afterschool export to fetch"):
        runtime.afterschool_export("http", lea=lea())


def test_a_listed_leas_write_mode_sis_and_store_are_its_own(single_lea_settings):
    assert runtime.scheduled_write_mode(lea()) == "dry_run"          # the deployment's "write" is not its setting
    assert runtime.scheduled_write_mode(lea(afterschool={"write_mode": "write"})) == "write"
    assert runtime.scheduled_write_mode(None) == "write"
    assert (runtime.sis_source(lea()), runtime.sis_db_conn_id(lea()), runtime.writeback_kind(lea())) == \
        ("sql", "sis_db_5610001", "sql")                             # the deployment reads PowerSchool; it SQL
    assert runtime.store_conn_id(lea(store_conn_id="store_b")) == "store_b"
    assert (runtime.sis_source(None), runtime.sis_db_conn_id(None), runtime.writeback_kind(None)) == \
        ("powerschool_api", "sis_db", "powerschool_api")
    ps = lea(sis={"source": "powerschool_api", "conn_id": "sis_ps_5610001"})
    assert runtime.writeback_kind(ps) == "powerschool_api" and runtime.api_conn_id(lea=ps) == "sis_ps_5610001"


def test_an_lea_on_another_vendor_api_is_refused_by_the_afterschool_reader(single_lea_settings, tmp_path):
    aeries = lea(sis={"source": "aeries_api", "conn_id": "sis_aeries_5610001"})
    with pytest.raises(runtime.AfterschoolSisUnsupported, match="LEA 5610001.s SIS is read through aeries_api"):
        runtime.sis_reader(tmp_path, aeries)


def test_health_checks_each_leas_own_dags(single_lea_settings):
    assert health_dag_ids(lea()) == ["calpads_sprg__5610001", "calpads_leap__5610001", "afterschool_sync__5610001",
                                     "calpads_maintenance"]
    assert health_dag_ids(lea(files=["SPRG"])) == ["calpads_sprg__5610001", "afterschool_sync__5610001",
                                                   "calpads_maintenance"]       # LEAP it does not submit
    assert health_dag_ids(None) == ["calpads_sprg", "calpads_leap", "afterschool_sync", "calpads_maintenance"]
