"""Every file DAG over every SIS source publishes the SQL source's bytes.

``calpads_sprg``, ``calpads_senr``, ``calpads_stas`` and ``calpads_leap`` run end to end through
``airflow dags test``, once per (source, file), against the local vendor servers
(tests/integration/vendor_servers), and the caret files of the published run folder must equal, byte for
byte, those the SQL source publishes for the same district (the manifest is not compared: it names paths
and run ids). The 20 runs go through one `airflow dags test` process (tests/dags/dagrun.run_dags: one
Airflow start-up instead of twenty), each test reads its own runs.

Two districts, both generated once for the module:
- ``demo``: the demo district. The PowerSchool API serves it as it is (PowerSchool carries every contract
  table), and so does TableSIS, a made-up vendor added from outside the project through ``[calpads]
  sis_hook_modules`` (tests/integration/fake_vendor, docs/sis-sources.md "Adding a vendor").
- ``vendor``: the demo district as Aeries holds it (vendor_servers.aeries.as_aeries_district: one student key,
  the program fields Aeries has, one all-day code a day) without the enrollment codes Aeries's v5 end points do
  not carry (``NOT_IN_AERIES``, docs/sis-sources.md), and as OneRoster plus the district's supplementary
  folder holds it (vendor_servers.oneroster). The Aeries API and OneRoster read it.

What a vendor cannot give is asserted, not skipped: the Aeries district's staged students hold the uncarried
codes blank while the demo district has them; OneRoster carries no programs, so SPRG over it fails before
fetching with the source's own words (the DAG-level failure and its email: tests/dags/test_sprg_dag_e2e.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.dags.dagrun import DagRunRequest, DagRunResult, project_env, run_dags

pytestmark = pytest.mark.dag
YEAR = "2025-2026"
DAGS = {"SPRG": "calpads_sprg", "SENR": "calpads_senr", "STAS": "calpads_stas", "LEAP": "calpads_leap"}
NOT_IN_AERIES = ("enrollmentstatus", "completionstatus", "receiver_school", "uccsu_reqs_met")
# After the academic year: STAS counts every school day of it, whichever day a run is dated.
DATES = {"sql/demo": "2026-07-01", "sql/vendor": "2026-07-02", "powerschool_api": "2026-07-03",
         "aeries_api": "2026-07-04", "oneroster": "2026-07-05", "tablesis_api": "2026-07-06"}
CONF = {"error_ceiling": "0.5"}   # Aeries lacks CPA IDs and Title I services: many SPRG records are held back
CID, SECRET, CERT = "cid-e2e", "secret-e2e-do-not-log", "aeries-cert-e2e-do-not-log"
TABLESIS_KEY = "tablesis-key-e2e-do-not-log"
TABLESIS_HOOK_MODULE = "tests.integration.fake_vendor.hook"
# TableSisHook.default_conn_name, its connection and pool: importing the hook here would register the vendor in
# the pytest process too, where the other tests expect only the project's vendors.
TABLESIS_CONN = "sis_tablesis"


@pytest.fixture(scope="module")
def districts(tmp_path_factory) -> dict[str, Path]:
    """Folder per district: sis.db, store.db (the afterschool export imported, as afterschool_sync does), and
    for ``vendor`` the OneRoster supplementary folder."""
    from calpads.afterschool.sis_data import SqlReader
    from calpads.afterschool.stages import AfterschoolRun, import_export
    from calpads.demo.generator import generate_district
    from tests.integration.vendor_servers.aeries import as_aeries_district
    from tests.integration.vendor_servers.oneroster import as_oneroster_district, write_supplementary

    root = tmp_path_factory.mktemp("districts")
    demo, vendor = root / "demo", root / "vendor"
    demo.mkdir()
    generate_district(sa.create_engine(f"sqlite:///{demo}/sis.db"), students=300, seed=21, dirty=0.02,
                      academic_year=YEAR, afterschool_dir=root / "as", log=lambda m: None)
    vendor.mkdir()
    shutil.copy(demo / "sis.db", vendor / "sis.db")
    sis = sa.create_engine(f"sqlite:///{vendor}/sis.db")
    as_aeries_district(sis, f"{YEAR[:4]}-07-01")
    with sis.begin() as c:
        for table in ("students", "reenrollments"):
            c.exec_driver_sql(f"UPDATE {table} SET {', '.join(f'{col} = NULL' for col in NOT_IN_AERIES)}")  # noqa: S608
    as_oneroster_district(sis)
    write_supplementary(sis, vendor / "supplementary")
    for folder in (demo, vendor):
        (folder / "as_pub").mkdir()
        run = AfterschoolRun("afterschool_sync", "manual__import", YEAR, date(2026, 6, 30), folder / "as_work",
                             folder / "as_pub")
        att, reg = root / "as" / "attendance.csv", root / "as" / "registrations.csv"
        import_export(run, SqlReader(sa.create_engine(f"sqlite:///{folder}/sis.db")),
                      sa.create_engine(f"sqlite:///{folder}/store.db"), att.read_bytes(), att.name,
                      registrations=(reg.read_bytes(), reg.name, ""))
    return {"demo": demo, "vendor": vendor}


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory) -> Iterator[int]:
    from calpads.demo.mailbox import start

    controller = start(tmp_path_factory.mktemp("mail"), port=0)
    try:
        yield controller.port
    finally:
        controller.stop()


def conn_id(source: str) -> str:
    """The source's Airflow connection id, also its pool's name."""
    from calpads.sources.api_sources import sis_api_name

    return TABLESIS_CONN if source == "tablesis_api" else sis_api_name(source)


@pytest.fixture(scope="module")
def tablesis_server(districts) -> Iterator[Any]:
    """The made-up vendor's test server (tests/integration/vendor_servers/tablesis) over ``demo``."""
    from tests.integration.vendor_servers.tablesis import TableSisServer

    with TableSisServer(sa.create_engine(f"sqlite:///{districts['demo']}/sis.db"), TABLESIS_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def connections(districts, airflow_home, tablesis_server, tmp_path_factory) -> Iterator[dict[str, dict[str, Any]]]:
    """The vendor servers (PowerSchool and TableSIS over ``demo``, Aeries and OneRoster over ``vendor``) and the
    Airflow connection of each source; the sources' pools exist."""
    from tests.dags.dagrun import airflow_base_env
    from tests.integration.vendor_servers.aeries import AeriesServer
    from tests.integration.vendor_servers.oneroster import OneRosterServer
    from tests.integration.vendor_servers.powerschool import PowerSchoolServer

    demo = sa.create_engine(f"sqlite:///{districts['demo']}/sis.db")
    vendor = sa.create_engine(f"sqlite:///{districts['vendor']}/sis.db")
    with vendor.connect() as c:
        subdistricts = {str(n): d for n, d in c.exec_driver_sql("SELECT school_number, subdistrict FROM schools")}
        categories = dict(c.exec_driver_sql("SELECT DISTINCT att_code, calpads_category FROM attendance_code")
                          .fetchall())
        lea = c.exec_driver_sql("SELECT value FROM prefs WHERE name = 'districtnumber' AND schoolid = 0").scalar()
    pools = tmp_path_factory.mktemp("pools") / "pools.json"   # one `airflow pools import`: one Airflow start-up
    pools.write_text(json.dumps({conn_id(source): {"slots": 2, "description": source, "include_deferred": False}
                                 for source in ("powerschool_api", "aeries_api", "oneroster", "tablesis_api")}))
    subprocess.run([sys.executable, "-m", "airflow", "pools", "import", str(pools)],
                   env=airflow_base_env(airflow_home), check=True, capture_output=True)
    with (PowerSchoolServer(demo, CID, SECRET, max_page_size=500) as ps, AeriesServer(vendor, CERT) as aeries,
          OneRosterServer(vendor, CID, SECRET) as oneroster):
        yield {
            "powerschool_api": {"conn_type": "calpads_powerschool", "host": ps.url, "login": CID,
                                "password": SECRET, "extra": {"page_size": 500}},
            "aeries_api": {"conn_type": "calpads_aeries", "host": f"{aeries.url}/api", "password": CERT,
                           "extra": {"page_size": 500, "subdistricts": subdistricts, "absence_codes": categories}},
            "oneroster": {"conn_type": "calpads_oneroster", "host": oneroster.url, "login": CID, "password": SECRET,
                          "extra": {"page_size": 500, "token_url": f"{oneroster.url}/oauth/token",
                                    "supplementary_folder": str(districts["vendor"] / "supplementary"),
                                    "reporting_lea": lea}},
            "tablesis_api": {"conn_type": "calpads_tablesis", "host": tablesis_server.url, "password": TABLESIS_KEY,
                             "extra": {"page_size": 100}},
        }


# (source, district) -> the files run over it. The SQL runs are the references of the vendors over the same
# district; OneRoster's SPRG is the documented gap (the_documented_sprg_gap), not a run.
PLAN: dict[tuple[str, str], tuple[str, ...]] = {
    ("sql", "demo"): tuple(DAGS), ("sql", "vendor"): tuple(DAGS), ("powerschool_api", "demo"): tuple(DAGS),
    ("aeries_api", "vendor"): tuple(DAGS), ("oneroster", "vendor"): ("SENR", "STAS", "LEAP"),
    ("tablesis_api", "demo"): ("SPRG",),
}
CASES = [(source, rt) for source in ("powerschool_api", "aeries_api", "oneroster") for rt in DAGS]


@dataclass
class PublishedRun:
    result: DagRunResult
    publish_root: Path

    def files(self, key: tuple[str, str, str]) -> dict[str, bytes]:
        """The caret files the run published, by name; the run succeeded."""
        res = self.result
        failed = {t: s for t, s in res.task_states.items() if s != "success"}
        assert res.state == "success", (key, failed, res.output[-3000:])
        run_folder = self.publish_root / YEAR / key[2] / str(res.run_id)
        files = {p.name: p.read_bytes() for p in sorted(run_folder.glob("*.txt"))}
        assert files and any(files.values()), (key, sorted(p.name for p in run_folder.iterdir()))
        return files


@pytest.fixture(scope="module")
def published(districts, airflow_home, tmp_path_factory, mailbox, connections
              ) -> dict[tuple[str, str, str], PublishedRun]:
    """Every run of PLAN, by (source, district, file), as `airflow dags test` runs in one process
    (tests/dags/dagrun.run_dags: the runs share the Airflow home, metadata DB and DAGs folder, so one Airflow
    start-up serves them all; they differ in connections and [calpads] settings only). Each (source,
    district) has its own store (history, staging counts) holding the district's afterschool import, as
    afterschool_sync leaves it, and its own publish and work roots."""
    root = tmp_path_factory.mktemp("published")
    keys, folders, requests = [], [], []
    for (source, district), record_types in PLAN.items():
        folder = root / f"{source}-{district}"
        folder.mkdir()
        shutil.copy(districts[district] / "store.db", folder / "store.db")
        env = project_env(airflow_home, sis_url=f"sqlite:///{districts[district]}/sis.db",
                          store_url=f"sqlite:///{folder}/store.db", publish_root=folder / "pub",
                          work_root=folder / "work", smtp_port=mailbox)
        env["AIRFLOW__CALPADS__SIS_SOURCE"] = source
        env.update({f"AIRFLOW__CALPADS__{k.upper()}": v for k, v in CONF.items()})
        if source != "sql":
            env[f"AIRFLOW_CONN_{conn_id(source).upper()}"] = json.dumps(connections[source])
        if source == "tablesis_api":   # a district's own vendor, kept outside the project's hooks package
            env["AIRFLOW__CALPADS__SIS_HOOK_MODULES"] = TABLESIS_HOOK_MODULE
        date_key = f"sql/{district}" if source == "sql" else source
        for record_type in record_types:
            keys.append((source, district, record_type))
            folders.append(folder / "pub")
            requests.append(DagRunRequest(env, DAGS[record_type], DATES[date_key], {"academic_year": YEAR}))
    results = run_dags(requests)
    return {key: PublishedRun(res, pub) for key, res, pub in zip(keys, results, folders, strict=True)}


def assert_same_bytes(label: str, api: dict[str, bytes], sql: dict[str, bytes]) -> None:
    assert sorted(api) == sorted(sql), label
    for name in sql:
        assert api[name] == sql[name], f"{label}: {name} differs from the SQL source's"


@pytest.mark.parametrize(("source", "record_type"), CASES)
def test_the_source_publishes_the_sql_sources_bytes(source, record_type, published, connections):
    district = "demo" if source == "powerschool_api" else "vendor"
    if source == "oneroster" and record_type == "SPRG":
        the_documented_sprg_gap(connections["oneroster"])
        return
    sql = published["sql", district, record_type].files(("sql", district, record_type))
    api = published[source, district, record_type].files((source, district, record_type))
    assert_same_bytes(f"{source} {record_type}", api, sql)


def test_a_vendor_added_through_sis_hook_modules_publishes_the_sql_sources_sprg(published, tablesis_server):
    """TableSIS, a made-up vendor kept outside the project (tests/integration/fake_vendor: one hook module, one
    client; its server tests/integration/vendor_servers/tablesis), named in ``[calpads] sis_hook_modules`` and
    chosen by ``[calpads] sis_source``: calpads_sprg runs through it and publishes the SQL source's bytes."""
    sql = published["sql", "demo", "SPRG"].files(("sql", "demo", "SPRG"))
    api = published["tablesis_api", "demo", "SPRG"].files(("tablesis_api", "demo", "SPRG"))
    assert_same_bytes("tablesis_api SPRG", api, sql)
    assert tablesis_server.requests("/api/tables/students"), "the run did not read the TableSIS server"


def test_one_differing_byte_fails_the_comparison(published):
    """The comparison can fail: one byte changed in a published file is caught, naming the file."""
    sql = published["sql", "demo", "SENR"].files(("sql", "demo", "SENR"))
    name = next(n for n, b in sql.items() if b)
    changed = {**sql, name: bytes([sql[name][0] ^ 1]) + sql[name][1:]}
    with pytest.raises(AssertionError, match=f"{name} differs"):
        assert_same_bytes("x", changed, sql)


def test_the_vendor_district_lacks_only_what_aeries_cannot_carry(districts):
    """The codes blanked in the vendor district are ones the demo district has: the comparison above is over
    the documented difference, not over nothing."""
    with sa.create_engine(f"sqlite:///{districts['demo']}/sis.db").connect() as c:
        for col in NOT_IN_AERIES[:1]:
            assert c.exec_driver_sql(f"SELECT COUNT(*) FROM students WHERE {col} IS NOT NULL").scalar()  # noqa: S608
    with sa.create_engine(f"sqlite:///{districts['vendor']}/sis.db").connect() as c:
        for col in NOT_IN_AERIES:
            assert not c.exec_driver_sql(f"SELECT COUNT(*) FROM students WHERE {col} IS NOT NULL").scalar()  # noqa: S608


def the_documented_sprg_gap(conn: dict[str, Any]) -> None:
    """OneRoster carries no programs: an SPRG pull fails before anything is fetched, in the source's words."""
    from calpads.run_scope import RunScope
    from calpads.sources.api_common import ApiConnection, MissingSourceData
    from calpads.sources.oneroster import SPRG_GAP, OneRosterClient

    client = OneRosterClient.for_connection(ApiConnection(conn["host"], conn["login"], conn["password"],
                                                          conn["extra"]))
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR}, date(2026, 7, 5))
    try:
        with pytest.raises(MissingSourceData) as err:
            client.pull_tables(scope, Path("/nonexistent"), record_types=("SPRG",))
    finally:
        client.close()
    assert str(err.value) == SPRG_GAP
