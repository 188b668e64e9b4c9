"""Afterschool import, gate, write-back (SQL and PowerSchool API) and health checks on hand-made districts.

The district (tests.unit.sis_fixtures): schools 100 (CDS 6000100) and 200 (6000200); student 1
(grade 4) and 2 (grade 2, left: EXITDATE 2025-10-15) at 100, student 3 (grade 5) at 200, absent
(excused) on 2025-10-08. The export has 17 rows: 5 good, 12 each breaking the rule in its comment.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads.afterschool import writeback
from calpads.afterschool.sis_data import PowerSchoolReader, SqlReader
from calpads.afterschool.sis_migrate import migrate
from calpads.afterschool.stages import AfterschoolRun, import_export, reconcile_stage, writeback_stage
from calpads.afterschool.store import AfterschoolStore
from calpads.health.checks import flows_api, flows_sql
from tests.unit.sis_fixtures import Sis

HEADER = "student_number,ssid,school_code,session_date,minutes,program"
ROWS = [
    ("100001,1000000001,6000100,2025-10-06,90,ELO-P", None),          # 1 good
    ("100001,,6000100,2025-10-07,60,ELO-P", None),                    # 2 good
    ("100003,1000000003,6000200,2025-10-08,120,ASES", None),          # 3 good (the SIS has him absent)
    ("100002,,6000100,2025-10-20,90,ELO-P", None),                    # 4 good for the gate; not enrolled
    ("9000001,,6000100,2025-10-06,120,ELO-P", "AS-KNOWN-STUDENT"),    # 5
    ("100001,1999999999,6000100,2025-10-09,90,ELO-P", "AS-SSID-MATCH"),
    ("100001,,6000100,2025-13-01,90,ELO-P", "AS-SESSION-DATE"),
    ("100001,,6000100,2024-10-01,90,ELO-P", "AS-SESSION-IN-YEAR"),
    ("100001,,6000100,2025-10-10,0,ELO-P", "AS-MINUTES-RANGE"),
    ("100001,,6000100,2025-10-13,601,ELO-P", "AS-MINUTES-RANGE"),     # 10
    ("100001,,6999999,2025-10-14,90,ELO-P", "AS-SITE-SCHOOL"),
    ("100001,1000000001,6000100,2025-10-06,90,ELO-P", "AS-DUPLICATE-SESSION"),   # exact repeat of line 1
    ("100001,,6000100,2025-10-15,90,CAMP", "AS-PROGRAM-CODE"),
    ("100001,,6000100,,90,ELO-P", "AS.session_date.required"),
    ("100003,,6000200,2025-10-11,240,AR", None),                      # 15 good (Saturday AR)
    ("100003,,6000200,2025-10-16,90,ASES", "AS-DUPLICATE-SESSION"),   # 16 and 17 conflict: both held
    ("100003,,6000200,2025-10-16,120,ASES", "AS-DUPLICATE-SESSION"),
]


def export(rows: list[str]) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def build_district(engine: sa.Engine, participation: bool = True) -> Sis:
    sis = Sis(engine)
    sis.add_school(100, "6000100")
    sis.add_school(200, "6000200")
    sis.add_student(1, school=100, grade=4)
    sis.add_student(2, school=100, grade=2, exit="2025-10-15")
    sis.add_student(3, school=200, grade=5)
    sis.insert("ATTENDANCE_CODE", [
        dict(ID=1, SCHOOLID=100, ATT_CODE="A", DESCRIPTION="Excused", PRESENCE_STATUS_CD="Absent",
             CALPADS_CATEGORY="EXCUSED"),
        dict(ID=2, SCHOOLID=200, ATT_CODE="A", DESCRIPTION="Excused", PRESENCE_STATUS_CD="Absent",
             CALPADS_CATEGORY="EXCUSED"),
    ])
    sis.insert("ATTENDANCE", [dict(ID=1, STUDENTID=3, SCHOOLID=200, ATT_DATE=date(2025, 10, 8), ATTENDANCE_CODEID=2,
                                   ATT_MODE_CODE="ATT_ModeDaily")])
    if participation:
        migrate(engine, apply=True)
    return sis


@pytest.fixture
def district(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/sis.db")
    build_district(engine)
    return engine


def make_run(tmp_path: Path, run_id: str = "manual_1") -> AfterschoolRun:
    return AfterschoolRun("afterschool_sync", run_id, "2025-2026", date(2026, 1, 15), tmp_path / "work" / run_id,
                          tmp_path / "pub")


def participation(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT STUDENTID, SCHOOLID, PARTICIPATION_DATE, MINUTES, PROGRAM "
            "FROM U_AFTERSCHOOL_PARTICIPATION ORDER BY STUDENTID, PARTICIPATION_DATE").fetchall()


def test_gate_fires_exactly_the_planted_rule_per_row_and_stages_once(district, tmp_path):
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    run = make_run(tmp_path)
    out = import_export(run, SqlReader(district), store, export([r for r, _ in ROWS]), "attendance.csv")
    assert (out["status"], out["rows"], out["accepted"], out["held_back"]) == ("staged", 17, 5, 12)
    held = (run.report_dir / "import_held_back.csv").read_text()
    import pandas as pd

    findings = pd.read_csv(run.report_dir / "import_held_back.csv", dtype=str)
    got = findings.groupby("line")["rule_id"].apply(list).to_dict()
    want = {str(i): [rule] for i, (_, rule) in enumerate(ROWS, start=1) if rule}
    assert got == want
    assert "1999999999" not in held and "(hidden)" in held                    # SSIDs never in the report
    assert oct((run.report_dir / "import_held_back.csv").stat().st_mode & 0o777) == "0o600"
    published = run.run_folder / "import.html"
    assert oct(published.stat().st_mode & 0o777) == "0o600"
    again = import_export(make_run(tmp_path, "manual_2"), SqlReader(district), store, export([r for r, _ in ROWS]),
                          "attendance.csv")
    assert again["status"] == "already_imported" and again["import_id"] == out["import_id"]
    assert len(AfterschoolStore(store).current_sessions("1234567", "2025-2026")) == 5


def test_writeback_dry_run_write_rerun_update_and_rejection(district, tmp_path):
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    good = [r for r, rule in ROWS if rule is None]
    import_export(make_run(tmp_path), SqlReader(district), store, export(good), "attendance.csv")
    target = writeback.SqlTarget(district)
    st = AfterschoolStore(store)

    # dry run: shows 4 inserts (line 4 fails WB-ENROLLED: the student left on Oct 14), writes nothing
    dry = writeback_stage(make_run(tmp_path, "dry"), SqlReader(district), target, store, "dry_run", ceiling=0.5)
    assert (dry["status"], dry["inserts"], dry["invalid"], dry["written"]) == ("dry_run", 4, 1, 0)
    assert dry["rules"] == {"WB-ENROLLED": 1}
    assert participation(district) == [] and st.audit_rows().empty
    plan_csv = (tmp_path / "work" / "dry" / "report" / "writeback_plan.csv").read_text()
    assert plan_csv.count("insert") == 4 and "100001" in plan_csv

    # write: the 4 valid rows land in the SIS, each audited with who and which run
    wrote = writeback_stage(make_run(tmp_path, "w1"), SqlReader(district), target, store, "write", ceiling=0.5)
    assert (wrote["status"], wrote["written"]) == ("written", 4)
    assert participation(district) == [(1, 100, "2025-10-06", 90, "ELO-P"), (1, 100, "2025-10-07", 60, "ELO-P"),
                                       (3, 200, "2025-10-08", 120, "ASES"), (3, 200, "2025-10-11", 240, "AR")]
    audit = st.audit_rows()
    assert len(audit) == 4 and set(audit["status"]) == {"done"} and set(audit["run_id"]) == {"w1"}
    assert set(audit["action"]) == {"insert"} and audit["before"].isna().all()
    assert set(audit["actor"]) == {"sqlite (no login)"}

    # re-run: nothing new
    again = writeback_stage(make_run(tmp_path, "w2"), SqlReader(district), target, store, "write", ceiling=0.5)
    assert (again["status"], again["inserts"], again["updates"], again["unchanged"]) == ("nothing_to_write", 0, 0, 4)
    assert len(participation(district)) == 4 and len(st.audit_rows()) == 4

    # the platform corrects line 2's minutes: one update, audited before/after
    changed = [r.replace("2025-10-07,60", "2025-10-07,75") for r in good]
    import_export(make_run(tmp_path, "i2"), SqlReader(district), store, export(changed), "attendance.csv")
    upd = writeback_stage(make_run(tmp_path, "w3"), SqlReader(district), target, store, "write", ceiling=0.5)
    assert (upd["inserts"], upd["updates"], upd["written"]) == (0, 1, 1)
    row = st.audit_rows("w3").iloc[0]
    assert json.loads(row["before"])["minutes"] == 60 and json.loads(row["after"])["minutes"] == 75
    assert (1, 100, "2025-10-07", 75, "ELO-P") in participation(district)

    # rejected: 1 invalid of 5 rows (20%) is over the default 5% ceiling: nothing written
    before = participation(district)
    extra = [*changed, "100001,,6000100,2025-10-08,30,ASES"]     # a new valid row, also not written
    import_export(make_run(tmp_path, "i3"), SqlReader(district), store, export(extra), "attendance.csv")
    with pytest.raises(writeback.WriteRejected, match="nothing was written"):
        writeback_stage(make_run(tmp_path, "w4"), SqlReader(district), target, store, "write")
    assert participation(district) == before
    runs = st.writeback_runs()
    assert runs.iloc[-1]["status"] == "rejected" and runs.iloc[-1]["written"] == 0
    invalid = (tmp_path / "work" / "w4" / "report" / "writeback_invalid.csv").read_text()
    assert "WB-ENROLLED" in invalid and "100002" in invalid


def test_reconciliation_after_write_back(district, tmp_path):
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    good = [r for r, rule in ROWS if rule is None]
    import_export(make_run(tmp_path), SqlReader(district), store, export(good), "attendance.csv")
    writeback_stage(make_run(tmp_path, "w"), SqlReader(district), writeback.SqlTarget(district), store, "write",
                    ceiling=0.5)
    with district.begin() as conn:   # a SIS row the platform does not have
        conn.exec_driver_sql("INSERT INTO U_AFTERSCHOOL_PARTICIPATION (STUDENTID, SCHOOLID, PARTICIPATION_DATE, "
                             "MINUTES, PROGRAM, SOURCE_ROW_HASH) VALUES (1, 100, '2025-11-03', 60, 'ASES', 'manual')")
    out = reconcile_stage(make_run(tmp_path, "r"), SqlReader(district), store)
    days = {k: v["days"] for k, v in out["kinds"].items()}
    # student 2's Oct 20 is not written (WB-ENROLLED) -> missing in SIS and not enrolled; student 3 absent Oct 8
    assert days == {"missing_in_sis": 1, "extra_in_sis": 1, "absent_in_sis": 1, "not_enrolled": 1,
                    "unknown_student": 0}
    csv = (tmp_path / "work" / "r" / "report" / "reconciliation.csv").read_text()
    assert "Lopez" not in csv and "1000000001" not in csv and "100002,2025-10" in csv


def test_writeback_through_the_powerschool_api(district, tmp_path, monkeypatch):
    from calpads.sources.api_sources import client_for
    from tests.integration.vendor_servers.powerschool import PowerSchoolServer

    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    good = [r for r, rule in ROWS if rule is None]
    with PowerSchoolServer(district, "cid", "secret", writable={"u_afterschool_participation"}) as server:
        monkeypatch.setenv("AIRFLOW_CONN_PS_W", json.dumps({"conn_type": "calpads_powerschool", "host": server.url,
                                                             "login": "cid", "password": "secret"}))
        from calpads.sources.api_sources import get_connection

        def client():
            return client_for("powerschool_api", get_connection("ps_w"))

        run = make_run(tmp_path)
        import_export(run, PowerSchoolReader(client(), run.work_dir), store, export(good), "attendance.csv")
        out = writeback_stage(make_run(tmp_path, "w1"), PowerSchoolReader(client(), tmp_path / "w1"),
                              writeback.PowerSchoolTarget(client()), store, "write", ceiling=0.5)
        assert (out["written"], out["target"]) == (4, "powerschool_api:U_AFTERSCHOOL_PARTICIPATION")
        assert len(server.requests("/ws/schema/table/u_afterschool_participation", method="POST", status=200)) == 4
        rows = server.tables["u_afterschool_participation"]
        assert sorted((r["studentid"], r["participation_date"], r["program"]) for r in rows)[0] == \
            ("1", "2025-10-06", "ELO-P")
        again = writeback_stage(make_run(tmp_path, "w2"), PowerSchoolReader(client(), tmp_path / "w2"),
                                writeback.PowerSchoolTarget(client()), store, "write", ceiling=0.5)
        assert again["status"] == "nothing_to_write" and len(server.tables["u_afterschool_participation"]) == 4
        assert AfterschoolStore(store).audit_rows()["actor"].iloc[0] == "PowerSchool plugin cid"
        # flows over the API: the plugin can write the participation table; a revoked grant says what to ask
        flows = {f.check: f.ok for f in flows_api(client(), ["read_attendance", "write_participation"])}
        assert all(flows.values()), flows
    with PowerSchoolServer(district, "cid", "secret", writable=set()) as server:
        monkeypatch.setenv("AIRFLOW_CONN_PS_W", json.dumps({"conn_type": "calpads_powerschool", "host": server.url,
                                                             "login": "cid", "password": "secret"}))
        denied = [f for f in flows_api(client(), ["write_participation"]) if not f.ok]
        assert denied and "write access to U_AFTERSCHOOL_PARTICIPATION" in denied[0].detail


# --------------------------------------------------------------------------- health on PostgreSQL
@pytest.mark.postgres
def test_health_flows_fail_for_the_right_reason_with_a_read_only_sis_user(pg_database):
    import uuid

    admin = sa.create_engine(pg_database)
    build_district(admin)
    role = f"calpads_ro_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    url = sa.make_url(pg_database).set(username=role)
    ro = sa.create_engine(url)
    try:
        res = {r.check: r for r in flows_sql(ro, ["read_enrollment", "read_attendance", "write_participation"])}
        assert res["flow_read_enrollment"].ok and res["flow_read_attendance"].ok
        w = res["flow_write_participation"]
        assert w.ok is False and "permission denied" in w.detail and role in w.detail
        assert "Can it write participation data back?" in w.ask and "INSERT and UPDATE" in w.ask
        with admin.begin() as conn:
            conn.exec_driver_sql(f"REVOKE SELECT ON attendance FROM {role}")  # noqa: S608 - our own role name
        res = {r.check: r for r in flows_sql(ro, ["read_attendance"])}
        assert res["flow_read_attendance"].ok is False and "ATTENDANCE (permission denied)" in \
            res["flow_read_attendance"].detail
        # the full owner passes, and the probe row was rolled back
        assert all(r.ok for r in flows_sql(admin, ["read_enrollment", "read_attendance", "write_participation"]))
        with admin.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM u_afterschool_participation").scalar() == 0
    finally:
        ro.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


@pytest.mark.postgres
def test_writeback_on_postgresql_and_missing_table_message(pg_database, tmp_path):
    engine = sa.create_engine(pg_database)
    build_district(engine, participation=False)
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    good = [r for r, rule in ROWS if rule is None]
    import_export(make_run(tmp_path), SqlReader(engine), store, export(good), "attendance.csv")
    res = {r.check: r for r in flows_sql(engine, ["write_participation"])}
    assert res["flow_write_participation"].ok is False and "has no U_AFTERSCHOOL_PARTICIPATION" in \
        res["flow_write_participation"].detail
    with pytest.raises(writeback.WriteBackError, match="run the migration"):
        writeback_stage(make_run(tmp_path, "w0"), SqlReader(engine), writeback.SqlTarget(engine), store, "write",
                        ceiling=0.5)
    migrate(engine, apply=True)
    out = writeback_stage(make_run(tmp_path, "w1"), SqlReader(engine), writeback.SqlTarget(engine), store, "write",
                          ceiling=0.5)
    assert out["written"] == 4
    again = writeback_stage(make_run(tmp_path, "w2"), SqlReader(engine), writeback.SqlTarget(engine), store, "write",
                            ceiling=0.5)
    assert again["unchanged"] == 4 and again["written"] == 0
    engine.dispose()
