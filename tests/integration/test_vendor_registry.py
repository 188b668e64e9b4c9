"""A new SIS vendor is one hook module + one client module + one test server: the registry (the hook
classes) gives it a source name, a connection type, a pool and data-flow words, and the SPRG pull over
its API (the client's ``pull_tables``, staged by the API adapter) equals the SQL pull of the same district."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.extracts.common import program_set
from calpads.layouts import load_layout
from calpads.run_scope import RunScope
from calpads.sources.sprg_frames import canonical
from calpads.sources.sql_sis import pull_sprg
from tests.integration.vendor_servers.tablesis import TableSisServer

API_KEY = "tablesis-key-9c2f-do-not-log"
FRAMES = ("schools", "scoped_schools", "calendar", "enrollments", "students", "programs", "services",
          "enrolled_students")


@pytest.fixture(scope="module")
def sis(tmp_path_factory) -> sa.Engine:
    from calpads.demo.generator import generate_district

    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('sis') / 'sis.db'}")
    generate_district(engine, students=200, seed=5, dirty=0.05, academic_year="2025-2026", log=lambda m: None)
    return engine


@pytest.fixture
def tablesis_hook() -> Iterator[type]:
    """The vendor's hook module imported (which registers it), unregistered afterwards."""
    import importlib

    from calpads_airflow.hooks.base import REGISTERED
    from tests.integration.fake_vendor import hook

    importlib.reload(hook)   # (re)defines the class, as the first import does: a second test gets it registered too
    yield hook.TableSisHook
    REGISTERED.pop(hook.TableSisHook.source, None)


def test_a_registered_vendor_gets_a_source_pool_connection_type_and_flow_words(tablesis_hook):
    from calpads.health.dataflows_doc import IntegrationConfig, render
    from calpads.sources.api_sources import sis_api_name
    from calpads_airflow.hooks import get_provider_info
    from calpads_airflow.registry import api_sources, flow_words, hook_for, pools

    assert {"powerschool_api", "aeries_api", "oneroster", "tablesis_api"} <= set(api_sources())
    assert hook_for("tablesis_api") is tablesis_hook
    assert ("sis_tablesis", 2, "SIS API calls: TableSIS (CALPADS test vendor)") in pools()
    assert sis_api_name("tablesis_api") == "sis_tablesis"
    assert flow_words()["tablesis_api"] == ("TableSIS API", "the API key's read access")
    md, _ = render(IntegrationConfig(sis_source="tablesis_api", writeback="powerschool_api", connections={},
                                     publish_root="file:///srv/calpads", recipients=[], afterschool_source="x",
                                     source_words=flow_words()))
    assert "sis_tablesis (TableSIS API)" in md and "the API key's read access" in md
    assert "sis_powerschool (PowerSchool plugin API)" in md
    types = {t["connection-type"]: t for t in get_provider_info()["connection-types"]}
    assert types["calpads_tablesis"]["ui-field-behaviour"]["relabeling"] == {"password": "API key"}


def test_an_unknown_source_is_refused_with_the_known_ones():
    from calpads_airflow.registry import hook_for

    with pytest.raises(ValueError, match="unknown SIS API source 'nosuch_api'.*powerschool_api"):
        hook_for("nosuch_api")


def test_a_hook_without_its_client_is_refused_at_definition():
    from calpads_airflow.hooks.base import REGISTERED, SisApiHook

    with pytest.raises(TypeError, match="client_class"):
        type("HalfHook", (SisApiHook,), {"source": "half_api", "conn_type": "x", "hook_name": "x",
                                         "default_conn_name": "sis_half"})
    assert "half_api" not in REGISTERED


def test_the_new_vendors_sprg_pull_through_the_registry_equals_the_sql_pull(sis, tablesis_hook, tmp_path,
                                                                              monkeypatch):
    from calpads.extracts import sprg
    from calpads.extracts.registry import ApiSource, adapter_for
    from calpads.extracts.selection import sprg_pull
    from calpads.staging.store import StagedTables

    scope = RunScope.from_params("SPRG", {"academic_year": "2025-2026"}, date(2026, 6, 30))
    codes = program_set(load_layout("SPRG"), scope)
    staged = StagedTables(tmp_path / "work")
    staged.reset()
    with TableSisServer(sis, API_KEY) as server:
        monkeypatch.setenv("AIRFLOW_CONN_TS_TEST", json.dumps(
            {"conn_type": "calpads_tablesis", "host": server.url, "password": API_KEY, "extra": {"page_size": 40}}))
        assert tablesis_hook("ts_test").test_connection() == (True, "Connected to TableSIS.")
        adapter_for(ApiSource("tablesis_api", "ts_test", tmp_path / "pages"), "SPRG").stage(sprg.TABLES, scope,
                                                                                           staged)
        api = sprg_pull(staged, scope, codes)
        paged = {int(e.query["offset"]) for e in server.requests("/api/tables/students")
                 if e.query.get("limit") == "40"}
    sql = pull_sprg(sis, scope, codes)
    assert len(api.programs) > 0 and len(paged) > 1   # a real pull, over several pages
    assert api.lea == sql.lea
    for name in FRAMES:
        left, right = canonical(getattr(sql, name)), canonical(getattr(api, name))
        assert list(left.columns) == list(right.columns), name
        pd.testing.assert_frame_equal(left, right, check_dtype=True, obj=name)
