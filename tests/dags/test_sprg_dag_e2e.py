"""calpads_sprg through `airflow dags test` on a generated district: published files, manifest,
sort order and transaction types across two runs with a change in between; the same files from the
PowerSchool and Aeries API sources as from the SQL source."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import demo_sis
from tests.dags.dagrun import project_env, run_dag

pytestmark = pytest.mark.dag
YEAR = "2025-2026"


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> Path:
    return demo_sis(tmp_path_factory.mktemp("district") / "sis.db", students=1500, seed=21, dirty=0.01,
                    academic_year=YEAR)


def run_folder(publish_root: Path, run_id: str) -> Path:
    return publish_root / YEAR / "SPRG" / run_id


def read(folder: Path, suffix: str) -> list[list[str]]:
    files = list(folder.glob(f"SPRG_*_{YEAR}{suffix}.txt"))
    return [ln.split("^") for ln in files[0].read_text().splitlines()] if files else []


def test_two_runs_with_a_change_between(airflow_home, district, tmp_path, smtp_server):
    sis_copy = tmp_path / "sis.db"
    sis_copy.write_bytes(district.read_bytes())
    pub = tmp_path / "pub"
    env = project_env(airflow_home, sis_url=f"sqlite:///{sis_copy}", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=pub, work_root=tmp_path / "work", smtp_port=smtp_server.port)

    first = run_dag(env, "calpads_sprg", "2026-04-01", {"academic_year": YEAR, "save_history": True})
    assert first.state == "success", first.output[-4000:]
    folder = run_folder(pub, first.run_id)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {p.name for p in folder.glob("*.txt")} == {f["name"] for f in manifest["files"]}
    for f in manifest["files"]:
        data = (folder / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        lines = data.decode().splitlines()
        assert len(lines) == f["records"]
        assert all(len(line.split("^")) == 25 for line in lines)
    full = read(folder, "")
    assert len(full) > 300 and all(r[0] == "SPRG" and r[1] == "" for r in full)
    # sorted by legal last name, first name, local student id, start date, school (case-insensitive)
    keys = [(r[9].upper(), r[8].upper(), r[7], r[14], r[4]) for r in full]
    assert keys == sorted(keys)
    assert manifest["counts"]["split_files_add_up"] is True
    held = manifest["validation"]["records_held_back"]
    assert held > 0 and len(full) == manifest["validation"]["records_checked"] - held
    # the alert email reports the held-back records with per-rule counts and the report link
    texts = smtp_server.texts()
    assert any(f"{held} held back" in t and "report" in t for t in texts), texts

    # A change in the SIS: one published program gets an end date, another is deleted.
    au = read(folder, "_AU")
    changed = next(r for r in au if r[12] in ("101", "108") and r[15] == "")
    deleted = next(r for r in au if r[12] in ("181", "182", "192", "191", "190") and r[2] != changed[2])
    changed_pid, deleted_pid = changed[2].split(".")[1], deleted[2].split(".")[1]
    eng = sa.create_engine(f"sqlite:///{sis_copy}")
    with eng.begin() as c:
        c.exec_driver_sql("UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMENDDATE = '2026-03-13' WHERE ID = ?",
                          (int(changed_pid),))
        c.exec_driver_sql("DELETE FROM S_CA_STU_CALPADSPROGRAMS_C WHERE ID = ?", (int(deleted_pid),))

    # The student of the deleted program is still enrolled: the delete needs allow_enrolled_deletes.
    second = run_dag(env, "calpads_sprg", "2026-04-02", {"academic_year": YEAR, "save_history": True,
                                                         "allow_enrolled_deletes": True})
    assert second.state == "success", second.output[-4000:]
    folder2 = run_folder(pub, second.run_id)
    au2 = read(folder2, "_AU")
    assert [(r[1], r[2], r[15]) for r in au2] == [("", changed[2], "20260313")]
    d = read(folder2, "_D")
    assert [r[:3] for r in d] == [["SPRG", "D", deleted[2]]]
    assert d[0][3:] == deleted[3:]  # a delete repeats the fields as last submitted


def sprg_files_from(source: str, sis_url: str, airflow_home: Path, tmp_path: Path, smtp_port: int,
                    server: Any = None, conn: dict[str, Any] | None = None, **conf: str) -> dict[str, bytes]:
    """Run calpads_sprg with `source` (an API source calls `server` through its default connection `conn`)
    and return the published files and the findings, by name."""
    pub = tmp_path / source / "pub"
    env = project_env(airflow_home, sis_url=sis_url, store_url=f"sqlite:///{tmp_path}/{source}_store.db",
                      publish_root=pub, work_root=tmp_path / source / "work", smtp_port=smtp_port)
    env["AIRFLOW__CALPADS__SIS_SOURCE"] = source
    env.update({f"AIRFLOW__CALPADS__{k.upper()}": v for k, v in conf.items()})
    if source != "sql":
        name = f"sis_{source.removesuffix('_api')}"
        subprocess.run([sys.executable, "-m", "airflow", "pools", "set", name, "2", source],
                       env=env, check=True, capture_output=True)
        env[f"AIRFLOW_CONN_{name.upper()}"] = json.dumps(conn)
        server.clear_log()
    res = run_dag(env, "calpads_sprg", "2026-04-10" if source == "sql" else "2026-04-11", {"academic_year": YEAR})
    failed = {t: s for t, s in res.task_states.items() if s != "success"}
    assert res.state == "success", (source, failed, res.output[-3000:])
    assert source == "sql" or server.log, f"the {source} source did not call its server"
    folder = run_folder(pub, res.run_id)
    return {**{p.name: p.read_bytes() for p in folder.glob("*.txt")},
            "findings": (folder / "report" / "findings.csv").read_bytes()}


def test_powerschool_api_source_publishes_the_same_files_as_sql(airflow_home, district, tmp_path, smtp_server):
    from tests.integration.vendor_servers.powerschool import PowerSchoolServer

    sis_url = f"sqlite:///{district}"
    sql = sprg_files_from("sql", sis_url, airflow_home, tmp_path, smtp_server.port)
    with PowerSchoolServer(sa.create_engine(sis_url), "cid", "csecret", max_page_size=500) as server:
        api = sprg_files_from("powerschool_api", sis_url, airflow_home, tmp_path, smtp_server.port, server, {
            "conn_type": "calpads_powerschool", "host": server.url, "login": "cid", "password": "csecret",
            "extra": {"page_size": 500}})
    assert len(sql) > 1 and sql == api


def test_aeries_api_source_publishes_the_same_files_as_sql(airflow_home, district, tmp_path, smtp_server):
    """The demo district as an Aeries district holds it (vendor_servers.aeries.as_aeries_district), read by
    SQL and by the Aeries API source, gives byte-identical files; the records that need fields Aeries's API
    lacks are held back by the same rules from both."""
    import shutil

    from tests.integration.vendor_servers.aeries import AeriesServer, as_aeries_district

    shutil.copy(district, tmp_path / "aeries.db")
    sis_url = f"sqlite:///{tmp_path / 'aeries.db'}"
    as_aeries_district(sa.create_engine(sis_url), f"{YEAR[:4]}-07-01")
    with sa.create_engine(sis_url).connect() as c:
        subdistricts = {str(n): d for n, d in c.exec_driver_sql("SELECT school_number, subdistrict FROM schools")}
    # Title I and CPA records all lack what Aeries cannot carry: more than the default 5% is held back.
    ceiling = {"error_ceiling": "0.5"}
    sql = sprg_files_from("sql", sis_url, airflow_home, tmp_path, smtp_server.port, **ceiling)
    with AeriesServer(sa.create_engine(sis_url), "cert-0123456789") as server:
        api = sprg_files_from("aeries_api", sis_url, airflow_home, tmp_path, smtp_server.port, server, {
            "conn_type": "calpads_aeries", "host": f"{server.url}/api", "password": "cert-0123456789",
            "extra": {"page_size": 500, "subdistricts": subdistricts}}, **ceiling)
    assert len(sql) > 1 and sql == api
    # Aeries carries no CPA IDs (113 records are held back) and no Title I services (no 122 records: the
    # seed reports one per service).
    assert "SPRG-CPA-113" in api["findings"].decode()
    full = next(v for k, v in api.items() if k.endswith(f"{YEAR}.txt")).decode()
    assert full.count("\n") > 100 and "^122^" not in full


def test_oneroster_source_fails_the_sprg_run_saying_what_to_supply(airflow_home, district, tmp_path, smtp_server):
    """OneRoster has no programs: the run stops at the pull, publishes nothing, and the email says which
    fields the district must supply from another source."""
    from tests.integration.vendor_servers.oneroster import OneRosterServer

    env = project_env(airflow_home, sis_url=f"sqlite:///{district}", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    env["AIRFLOW__CALPADS__SIS_SOURCE"] = "oneroster"
    subprocess.run([sys.executable, "-m", "airflow", "pools", "set", "sis_oneroster", "2", "OneRoster"],
                   env=env, check=True, capture_output=True)
    with OneRosterServer(sa.create_engine(f"sqlite:///{district}"), "cid", "csecret") as server:
        env["AIRFLOW_CONN_SIS_ONEROSTER"] = json.dumps({"conn_type": "calpads_oneroster", "host": server.url,
                                                         "login": "cid", "password": "csecret"})
        res = run_dag(env, "calpads_sprg", "2026-04-12", {"academic_year": YEAR})
    assert res.state == "failed" and res.task_states["extract_records"] == "failed", res.output[-3000:]
    assert not list((tmp_path / "pub").rglob("*.txt"))
    msg = next(t for t in smtp_server.texts() if "extract_records" in t)
    assert "OneRoster carries rostering and enrollment only" in msg and "Education Program Code (13)" in msg
    assert "set [calpads] sis_source to a source that has these fields" in msg
