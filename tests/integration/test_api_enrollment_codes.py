"""The enrollment's CALPADS codes (ENROLLMENTSTATUS, EXITCODE, COMPLETIONSTATUS, RECEIVER_SCHOOL,
UCCSU_REQS_MET) through the API sources, at the mapping level: the contract-shaped STUDENTS / REENROLLMENTS
rows each source hands over carry what its vendor's API has, against the local vendor servers serving a
generated demo district; a server without the columns is still read (blank, a warning).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads.extracts.common import program_set
from calpads.layouts import load_layout
from calpads.run_scope import RunScope
from calpads.sources.aeries_api import SENR_GAP, AeriesClient, AeriesSettings, enrollment_codes
from calpads.sources.api_common import RetryPolicy
from calpads.sources.powerschool_api import PowerSchoolClient, PowerSchoolSettings
from calpads.sources.sprg_frames import canonical, client_sprg_pull
from calpads.sources.sql_sis import pull_sprg
from tests.integration.vendor_servers.aeries import AeriesServer, as_aeries_district
from tests.integration.vendor_servers.powerschool import PowerSchoolServer
from tests.unit.sis_fixtures import drop_enrollment_codes

CODES = ("enrollmentstatus", "exitcode", "completionstatus", "receiver_school", "uccsu_reqs_met")
CLIENT_ID, CLIENT_SECRET, CERT = "calpads-client", "s3cr3t-do-not-log", "aeries-cert-do-not-log"
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.05, read_timeout=10, connect_timeout=5)
SCOPE = RunScope.from_params("SPRG", {"academic_year": "2025-2026"}, date(2026, 6, 30))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from calpads.demo.generator import generate_district

    path = tmp_path_factory.mktemp("demo") / "sis.db"
    generate_district(sa.create_engine(f"sqlite:///{path}"), students=500, seed=5, dirty=0.05, log=lambda _m: None)
    return path


def copy_of(demo: Path, tmp_path: Path) -> sa.Engine:
    shutil.copy(demo, tmp_path / "sis.db")
    return sa.create_engine(f"sqlite:///{tmp_path / 'sis.db'}")


def db_codes(engine: sa.Engine, table: str, key: str, where: str = "1 = 1") -> dict[tuple, tuple]:
    """(student, school, entry date) -> the table's codes, as text (this test's own read of the SIS)."""
    with engine.connect() as c:
        rows = c.exec_driver_sql(f"SELECT {key}, SCHOOLID, ENTRYDATE, {', '.join(CODES)} FROM {table} "  # noqa: S608
                                 f"WHERE {where}")
        return {(int(r[0]), int(r[1]), str(r[2])): tuple(r[3:]) for r in rows}


def api_codes(rows: list[dict], key: str) -> dict[tuple, tuple]:
    return {(int(r[key]), int(r["schoolid"]), r["entrydate"]): tuple(r.get(c) for c in CODES) for r in rows}


@pytest.fixture
def powerschool(demo, tmp_path) -> Iterator[tuple[sa.Engine, PowerSchoolClient]]:
    engine = copy_of(demo, tmp_path)
    with PowerSchoolServer(engine, CLIENT_ID, CLIENT_SECRET, max_page_size=200) as server:
        client = PowerSchoolClient(PowerSchoolSettings(server.url, CLIENT_ID, CLIENT_SECRET, page_size=200,
                                                       policy=FAST))
        yield engine, client
        client.close()


def test_powerschool_rows_carry_the_enrollment_codes(powerschool, tmp_path):
    engine, client = powerschool
    tables = client.pull_tables(SCOPE, tmp_path / "pages", program_set(load_layout("SPRG"), SCOPE))
    students, reenrollments = api_codes(tables["students"], "id"), api_codes(tables["reenrollments"], "studentid")
    # every student, excluded ones too (the enrollment files list them as not extracted)
    assert students == db_codes(engine, "STUDENTS", "ID")
    assert reenrollments == db_codes(engine, "REENROLLMENTS", "STUDENTID")
    exits = {v[1] for v in (*students.values(), *reenrollments.values())}
    assert {"T160", "T165", "E230"} <= exits                       # the demo's exits came through


def test_powerschool_without_the_columns_reads_blank_codes_and_warns(demo, tmp_path, caplog):
    engine = copy_of(demo, tmp_path)
    drop_enrollment_codes(engine)
    with PowerSchoolServer(engine, CLIENT_ID, CLIENT_SECRET, max_page_size=200) as server:
        client = PowerSchoolClient(PowerSchoolSettings(server.url, CLIENT_ID, CLIENT_SECRET, page_size=200,
                                                       policy=FAST))
        codes = program_set(load_layout("SPRG"), SCOPE)
        with caplog.at_level(logging.WARNING):
            tables = client.pull_tables(SCOPE, tmp_path / "pages", codes)
            pull = client_sprg_pull(client, SCOPE, codes, tmp_path / "pages")
        client.close()
        assert not server.requests(status=400)                 # never asked for a column the server lacks
    assert all(r.get(c) is None for t in ("students", "reenrollments") for r in tables[t] for c in CODES)
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "STUDENTS.EXITCODE" in warned and "REENROLLMENTS.UCCSU_REQS_MET" in warned
    expected = pull_sprg(engine, SCOPE, codes)
    assert canonical(pull.enrollments).equals(canonical(expected.enrollments))     # SPRG reads the same


def test_aeries_exit_reason_code_is_mapped_and_the_rest_is_a_stated_gap(demo, tmp_path, caplog):
    engine = copy_of(demo, tmp_path)
    as_aeries_district(engine, "2025-07-01")
    with AeriesServer(engine, CERT) as server:
        client = AeriesClient(AeriesSettings(server.url, CERT, policy=FAST))
        with caplog.at_level(logging.WARNING):
            tables = client.pull_tables(SCOPE, tmp_path / "pages", record_types=("SENR",))
        client.close()
    want_s = {k: (None, v[1], None, None, None) for k, v in db_codes(engine, "STUDENTS", "ID").items()}
    want_r = {k: (None, v[1], None, None, None) for k, v in db_codes(engine, "REENROLLMENTS", "STUDENTID").items()}
    assert api_codes(tables["students"], "id") == want_s
    assert api_codes(tables["reenrollments"], "studentid") == want_r
    assert {v[1] for v in want_r.values()} >= {"T160", "T165"}
    assert SENR_GAP in [r.getMessage() for r in caplog.records]


def test_aeries_exit_codes_are_translated_by_the_connection():
    assert enrollment_codes("210", {"210": "T160"})["exitcode"] == "T160"
    assert enrollment_codes("E230", {"210": "T160"}) == {"enrollmentstatus": None, "exitcode": "E230",
                                                         "completionstatus": None, "receiver_school": None,
                                                         "uccsu_reqs_met": None}
    assert enrollment_codes("", {})["exitcode"] is None and enrollment_codes(None, {})["exitcode"] is None
