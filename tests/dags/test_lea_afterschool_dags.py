"""Two LEAs of one LEA file, through `airflow dags test`: each runs its own afterschool_sync__<code> and
integration_health__<code> against its own demo SIS and afterschool export, and each writes only to its own SIS,
its own rows of the shared store and its own publish folder, and emails only its own people. The deployment's
single-LEA settings (sis_db, the afterschool_drop_path and afterschool_write_mode Variables, the email lists) point
elsewhere: a DAG that read them would fail or show up here."""

from __future__ import annotations

import json
import sqlite3

import pytest
import sqlalchemy as sa
import yaml

from calpads.afterschool.sis_migrate import migrate
from tests.dags.dagrun import DagRunRequest, project_env, run_dags
from tests.dags.test_afterschool_dags import expected_written

pytestmark = pytest.mark.dag

YEAR = "2025-2026"
ALDER, BIRCH = "5611111", "5622222"
PEOPLE = {ALDER: {"data@alder.example", "afterschool@alder.example"},
          BIRCH: {"calpads@birch.example", "it@birch.example"}}
DEPLOYMENT = "deployment-team@county.example"
PEOPLE_NAMES = {ALDER: "Alder Union Elementary", BIRCH: "Birch Joint Unified"}


@pytest.fixture(scope="module")
def two_leas(tmp_path_factory):
    """Each LEA's own demo SIS (its own district number, schools and students) and afterschool export."""
    from calpads.demo.generator import generate_district

    folder = tmp_path_factory.mktemp("two_leas")
    for code, seed in ((ALDER, 11), (BIRCH, 12)):
        engine = sa.create_engine(f"sqlite:///{folder}/sis_{code}.db")
        generate_district(engine, students=150, seed=seed, academic_year=YEAR, afterschool_dir=folder / f"drop_{code}",
                          lea_code=code)
        migrate(engine, apply=True)
        engine.dispose()
    return folder


def lea_file(folder, path) -> None:
    """Alder writes participation back on its scheduled runs; Birch leaves its write mode at the default."""
    path.write_text(yaml.safe_dump({"defaults": {"timezone": "America/Los_Angeles"}, "leas": [
        {"code": ALDER, "name": "Alder Union Elementary", "sis": {"source": "sql", "conn_id": f"sis_db_{ALDER}"},
         "emails": {"team": ["data@alder.example"], "afterschool": ["afterschool@alder.example"]},
         "afterschool": {"drop_path": str(folder / f"drop_{ALDER}"), "write_mode": "write"}},
        {"code": BIRCH, "name": "Birch Joint Unified", "sis": {"source": "sql", "conn_id": f"sis_db_{BIRCH}"},
         "emails": {"team": ["calpads@birch.example"], "it": ["it@birch.example"]},
         "afterschool": {"drop_path": str(folder / f"drop_{BIRCH}")}},
    ]}))


def rows(db, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_two_leas_each_sync_and_check_only_their_own(airflow_home, two_leas, tmp_path, smtp_server):
    pub, store = tmp_path / "pub", tmp_path / "store.db"
    env = project_env(airflow_home, sis_url="sqlite:////nonexistent/sis.db", store_url=f"sqlite:///{store}",
                      publish_root=pub, work_root=tmp_path / "work", smtp_port=smtp_server.port, emails=DEPLOYMENT)
    lea_file(two_leas, tmp_path / "leas.yaml")
    for code in (ALDER, BIRCH):   # each LEA's folder of the share, as district IT mounts it (a run never creates one)
        (pub / code).mkdir()
    env["AIRFLOW__CALPADS__LEAS_FILE"] = str(tmp_path / "leas.yaml")
    for code in (ALDER, BIRCH):
        env[f"AIRFLOW_CONN_SIS_DB_{code}"] = f"sqlite:///{two_leas}/sis_{code}.db"
    env["AIRFLOW_VAR_AFTERSCHOOL_DROP_PATH"] = str(tmp_path / "the_single_leas_drop")   # not theirs
    env["AIRFLOW_VAR_AFTERSCHOOL_WRITE_MODE"] = "write"          # the single LEA's setting: Birch keeps dry_run
    env["AIRFLOW_VAR_AFTERSCHOOL_STAFF_EMAILS"] = DEPLOYMENT
    env["AIRFLOW_VAR_IT_EMAILS"] = DEPLOYMENT
    env["AIRFLOW__CALPADS__HEALTH_DAGS"] = "afterschool_sync"    # each LEA's own afterschool_sync__<code>
    sync, health = {"academic_year": YEAR}, {"academic_year": YEAR}
    results = run_dags([DagRunRequest(env, f"afterschool_sync__{ALDER}", "2026-06-30", sync),
                        DagRunRequest(env, f"afterschool_sync__{BIRCH}", "2026-06-30", sync),
                        DagRunRequest(env, f"integration_health__{ALDER}", "2026-07-01", health),
                        DagRunRequest(env, f"integration_health__{BIRCH}", "2026-07-01", health)])
    a_sync, b_sync, a_health, b_health = results
    assert a_sync.state == "success", a_sync.output[-4000:]
    assert b_sync.state == "success", b_sync.output[-4000:]

    # Each SIS: Alder's (write) holds exactly the rows of its own export; Birch's (dry_run by default) none.
    a_sis, b_sis = f"{two_leas}/sis_{ALDER}.db", f"{two_leas}/sis_{BIRCH}.db"
    want, _july = expected_written(two_leas / f"drop_{ALDER}", a_sis)
    assert want > 0
    assert rows(a_sis, "SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION") == [(want,)]
    assert rows(a_sis, "SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION WHERE STUDENTID NOT IN "
                       "(SELECT ID FROM STUDENTS)") == [(0,)]
    assert rows(b_sis, "SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION") == [(0,)]

    # The shared store: one import per LEA under its own code, its write-back run in its own mode.
    assert sorted(rows(store, "SELECT reporting_lea, count(*) FROM afterschool_imports GROUP BY 1")) == \
        [(ALDER, 1), (BIRCH, 1)]
    assert sorted(rows(store, "SELECT reporting_lea, dag_id, write_mode FROM afterschool_writeback_runs")) == \
        [(ALDER, f"afterschool_sync__{ALDER}", "write"), (BIRCH, f"afterschool_sync__{BIRCH}", "dry_run")]
    assert rows(store, "SELECT reporting_lea, count(*) FROM afterschool_writeback_audit WHERE status = 'done' "
                       "GROUP BY 1") == [(ALDER, want)]
    for code in (ALDER, BIRCH):   # the staged sessions are the LEA's own students (its SIS's local ids)
        own = {r[0] for r in rows(f"{two_leas}/sis_{code}.db", "SELECT STUDENT_NUMBER FROM STUDENTS")}
        staged = {r[0] for r in rows(store, f"SELECT student_number FROM afterschool_sessions "  # noqa: S608
                                            f"WHERE reporting_lea = '{code}'")}
        assert staged and staged <= own

    # Publish folders: each LEA's reports and integration pages under <root>/<code>, nothing at the root itself.
    assert sorted(p.name for p in pub.iterdir()) == [ALDER, BIRCH]
    for code, result in ((ALDER, a_health), (BIRCH, b_health)):
        assert result.task_states["email_summary"] == "success", result.output[-4000:]
        assert any((pub / code / YEAR / "AFTERSCHOOL").iterdir())
        published = json.loads((pub / code / "integration" / "health.json").read_text())
        assert published["run_id"] == result.run_id
        flows = (pub / code / "integration" / "data_flows.html").read_text()
        other = BIRCH if code == ALDER else ALDER
        assert f"sis_db_{code}" in flows and f"sis_db_{other}" not in flows

    # Emails: each to the LEA's own people only; each LEA gets its sync summary and its health summary.
    got: dict[str, list[str]] = {ALDER: [], BIRCH: []}
    for mail, text in zip(smtp_server.messages, smtp_server.texts(), strict=True):
        to = {a.strip() for a in mail["To"].split(",")}
        owners = [code for code, people in PEOPLE.items() if to <= people]
        assert len(owners) == 1, (mail["Subject"], to)    # never the deployment's list, never both LEAs
        got[owners[0]].append(text)
    for code, texts in got.items():
        other = BIRCH if code == ALDER else ALDER
        assert any("afterschool_sync 2025-2026" in t for t in texts), code
        checks = [t for t in texts if "integration health" in t.splitlines()[0]]
        assert len(checks) == 1, code
        assert all(f", {code})" in t.splitlines()[0] for t in texts if "afterschool_sync 2025" in t.splitlines()[0])
        assert f"({PEOPLE_NAMES[code]}, {code})" in checks[0].splitlines()[0]
        # its checks looked at its own afterschool_sync run, and name its own SIS connection
        assert f"afterschool_sync__{code}" in checks[0] and f"afterschool_sync__{other}" not in checks[0]
