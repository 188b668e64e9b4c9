"""Every record type from every source through one path: the staged tables of the PowerSchool API, the
Aeries API and OneRoster with the district's supplementary folder (tests/integration/vendor_servers serving
the demo district as each vendor holds it) give the very records and not-extracted rows that the SIS
database's staged tables give for the same district.

What a vendor cannot carry is compared explicitly, never skipped:
- Aeries's v5 end points carry no Enrollment Status, Completion Status, Expected Receiver School or UC/CSU
  indicator (docs/sis-sources.md): its district is compared with those columns blank in the SIS database, and
  the Aeries staged tables must hold them blank while the original district has values;
- OneRoster has no CALPADS programs: SPRG stops before anything is staged, with the source's own words.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.extracts.registry import ApiSource
from calpads.run_scope import RunScope
from calpads.sources.api_common import MissingSourceData
from calpads.sources.sprg_frames import canonical
from calpads.staging import contract
from calpads.staging.store import StagedTables
from tests.integration.vendor_servers.powerschool import PowerSchoolServer

CLIENT_ID, CLIENT_SECRET = "calpads-client-staged", "s3cr3t-staged-do-not-log"
AERIES_CERT = "aeries-cert-staged-do-not-log"
TODAY = date(2026, 6, 20)
YEAR = "2025-2026"
# The enrollment codes Aeries's API does not carry (aeries_api.SENR_GAP): blank in the Aeries district.
NOT_IN_AERIES = ("enrollmentstatus", "completionstatus", "receiver_school", "uccsu_reqs_met")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo district's SIS database and its afterschool export (generated once)."""
    from calpads.demo.generator import generate_district

    root = tmp_path_factory.mktemp("district")
    sis = sa.create_engine(f"sqlite:///{root}/sis.db")
    generate_district(sis, students=500, seed=5, dirty=0.05, academic_year=YEAR, afterschool_dir=root / "as",
                      log=lambda m: None)
    sis.dispose()
    return root


def with_afterschool(demo: Path, sis: sa.Engine, root: Path) -> sa.Engine:
    """A calpads_store holding the afterschool export as afterschool_sync imports it, against this SIS."""
    from calpads.afterschool.sis_data import SqlReader
    from calpads.afterschool.stages import AfterschoolRun, import_export

    store = sa.create_engine(f"sqlite:///{root}/store.db")
    (root / "as_pub").mkdir()
    run = AfterschoolRun("afterschool_sync", "manual__as", YEAR, TODAY, root / "as_work", root / "as_pub")
    att, reg = demo / "as" / "attendance.csv", demo / "as" / "registrations.csv"
    import_export(run, SqlReader(sis), store, att.read_bytes(), att.name,
                  registrations=(reg.read_bytes(), reg.name, ""))
    return store


def district_for(source: str, demo: Path, root: Path) -> tuple[sa.Engine, Path | None]:
    """The demo district as ``source``'s vendor holds it, as a SIS database (and OneRoster's supplementary
    folder)."""
    from tests.integration.vendor_servers.aeries import as_aeries_district
    from tests.integration.vendor_servers.oneroster import as_oneroster_district, write_supplementary

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo / "sis.db", root / "sis.db")
    sis = sa.create_engine(f"sqlite:///{root}/sis.db")
    folder = None
    if source == "aeries_api":
        as_aeries_district(sis, f"{YEAR[:4]}-07-01")
        with sis.begin() as c:
            for table in ("students", "reenrollments"):
                c.exec_driver_sql(f"UPDATE {table} SET {', '.join(f'{col} = NULL' for col in NOT_IN_AERIES)}")  # noqa: S608
    elif source == "oneroster":
        as_oneroster_district(sis)
        folder = root / "supplementary"
        write_supplementary(sis, folder)
    return sis, folder


@contextmanager
def serve(source: str, sis: sa.Engine, folder: Path | None, monkeypatch) -> Iterator[str]:
    """Start ``source``'s local server over the district; yields the Airflow connection id the run uses."""
    from tests.integration.vendor_servers.aeries import AeriesServer
    from tests.integration.vendor_servers.oneroster import OneRosterServer

    fast = {"max_attempts": 3, "backoff_base": 0.02, "backoff_cap": 0.2}
    if source == "powerschool_api":
        server = PowerSchoolServer(sis, CLIENT_ID, CLIENT_SECRET, max_page_size=200)
        conn = lambda url: {"conn_type": "calpads_powerschool", "host": url, "login": CLIENT_ID,  # noqa: E731
                            "password": CLIENT_SECRET, "extra": {"page_size": 200, **fast}}
    elif source == "aeries_api":
        with sis.connect() as c:
            subdistricts = {str(n): d for n, d in c.exec_driver_sql("SELECT school_number, subdistrict FROM schools")}
            categories = dict(c.exec_driver_sql(
                "SELECT DISTINCT att_code, calpads_category FROM attendance_code").fetchall())
        server = AeriesServer(sis, AERIES_CERT)
        conn = lambda url: {"conn_type": "calpads_aeries", "host": f"{url}/api", "password": AERIES_CERT,  # noqa: E731
                            "extra": {"page_size": 200, "subdistricts": subdistricts, "absence_codes": categories,
                                      **fast}}
    else:
        with sis.connect() as c:
            lea = c.exec_driver_sql("SELECT value FROM prefs WHERE name = 'districtnumber' AND schoolid = 0").scalar()
        server = OneRosterServer(sis, CLIENT_ID, CLIENT_SECRET)
        conn = lambda url: {"conn_type": "calpads_oneroster", "host": url, "login": CLIENT_ID,  # noqa: E731
                            "password": CLIENT_SECRET, "extra": {"page_size": 100, "token_url": f"{url}/oauth/token",
                                                                 "supplementary_folder": str(folder),
                                                                 "reporting_lea": lea, **fast}}
    with server:
        monkeypatch.setenv("AIRFLOW_CONN_SIS_STAGED", json.dumps(conn(server.url)))
        yield "sis_staged"


def extract(root: Path, record_type: str, sis: sa.Engine | ApiSource, store: sa.Engine, name: str,
            **params: object) -> pipeline.RunContext:
    scope = RunScope.from_params(record_type, {"academic_year": YEAR, **params}, today=TODAY)
    ctx = pipeline.RunContext(record_type, f"calpads_{record_type.lower()}", f"manual__{name}", scope,
                              root / name / record_type, root / "pub")
    pipeline.extract(ctx, sis, store_engine=store)
    return ctx


def frames(ctx: pipeline.RunContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (canonical(pd.read_parquet(ctx.path(pipeline.RECORDS))),
            canonical(pd.read_parquet(ctx.path(pipeline.NOT_EXTRACTED))))


CASES = [("SENR", {}), ("SENR", {"submission": "fall1"}), ("STAS", {}),
         ("STAS", {"schools": "6010037,0130037"}), ("LEAP", {}), ("SPRG", {})]


@pytest.mark.parametrize("source", ["powerschool_api", "aeries_api", "oneroster"])
def test_every_source_builds_what_the_sql_source_builds(demo, tmp_path, monkeypatch, source):
    sis, folder = district_for(source, demo, tmp_path / "district")
    store = with_afterschool(demo, sis, tmp_path)
    with serve(source, sis, folder, monkeypatch) as conn_id:
        for i, (record_type, params) in enumerate(CASES):
            sql_ctx = extract(tmp_path, record_type, sis, store, f"sql{i}", **params)
            records, not_extracted = frames(sql_ctx)
            assert len(records) > 0, (record_type, params)
            api = ApiSource(source, conn_id, tmp_path / f"pages{i}")
            if source == "oneroster" and record_type == "SPRG":
                from calpads.sources.oneroster import SPRG_GAP

                with pytest.raises(MissingSourceData) as err:
                    extract(tmp_path, record_type, api, store, f"api{i}", **params)
                assert str(err.value) == SPRG_GAP
                assert not (tmp_path / f"api{i}" / record_type / pipeline.RECORDS).exists()
                continue
            api_ctx = extract(tmp_path, record_type, api, store, f"api{i}", **params)
            api_records, api_not_extracted = frames(api_ctx)
            what = f"{source} {record_type} {params}"
            pd.testing.assert_frame_equal(api_records, records, obj=f"{what} records")
            pd.testing.assert_frame_equal(api_not_extracted, not_extracted, obj=f"{what} not extracted")
            # the API run staged the tables the record type reads, and the gate counted them as the SQL run did
            assert api_ctx.state()["staging"]["counts"] == sql_ctx.state()["staging"]["counts"], what
            if source == "aeries_api" and record_type == "SENR":
                staged = StagedTables(api_ctx.work_dir).frame(contract.STUDENTS)
                assert staged[list(NOT_IN_AERIES)].isna().all().all()
    if source == "aeries_api":   # the blanked codes are a real difference: the district itself has them
        with sa.create_engine(f"sqlite:///{demo}/sis.db").connect() as c:
            assert c.exec_driver_sql("SELECT COUNT(*) FROM students WHERE enrollmentstatus IS NOT NULL").scalar()
