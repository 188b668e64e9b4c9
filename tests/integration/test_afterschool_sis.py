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


REG_HEADER = "student_number,ssid,program,registration_date"


def export(rows: list[str]) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def registrations(rows: list[str]) -> tuple[bytes, str, str]:
    return ("\n".join([REG_HEADER, *rows]) + "\n").encode(), "registrations.csv", ""


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
    assert oct(published.stat().st_mode & 0o777) == "0o640"     # published like the CALPADS run folders
    assert oct(run.run_folder.stat().st_mode & 0o777) == "0o750"
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
                    "held_back": 0, "removed_in_platform": 0, "unknown_student": 0}
    assert out["categories"] == {"integration": 1, "data quality": 2, "process": 1}
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


# --------------------------------------------------------------------------- round 2
REG_ROWS = [
    ("100001,,ELO-P,2025-06-20", None),                               # 1 good (registered in June for summer)
    ("100003,1000000003,ASES,2025-08-01", None),                      # 2 good
    ("9000001,,ELO-P,2025-08-01", "ASR-KNOWN-STUDENT"),
    ("100002,1999999999,ELO-P,2025-08-01", "ASR-SSID-MATCH"),
    ("100002,,ELO-P,2026-07-01", "ASR-REGISTRATION-DATE"),            # 5: after the year's June 30
    ("100002,,AR,2025-08-01", "ASR-PROGRAM-CODE"),                    # AR needs no registration
    ("100002,,,2025-08-01", "ASR.program.required"),
]


def test_registrations_gate_fires_exactly_the_planted_rule_and_is_staged(district, tmp_path):
    import pandas as pd

    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    run = make_run(tmp_path)
    out = import_export(run, SqlReader(district), store, export([ROWS[0][0]]), "attendance.csv",
                        registrations=registrations([r for r, _ in REG_ROWS]))
    assert out["registrations"] == {"rows": 7, "accepted": 2, "held_back": 5}
    findings = pd.read_csv(run.report_dir / "registrations_held_back.csv", dtype=str)
    assert findings.groupby("line")["rule_id"].apply(list).to_dict() == {
        str(i): [rule] for i, (_, rule) in enumerate(REG_ROWS, start=1) if rule}
    assert "1999999999" not in (run.report_dir / "registrations_held_back.csv").read_text()
    staged = AfterschoolStore(store).staged("1234567", "2025-2026")
    assert staged.registered_ids() == {1, 3}
    held = staged.held[staged.held["file"] == "registrations"].sort_values("line")
    assert held["line"].tolist() == [3, 4, 5, 6, 7] and "ssid" not in staged.held.columns


def test_summer_elop_session_of_a_registered_student_is_written(district, tmp_path):
    # Enrollments start Aug 13. July 14 ELO-P: student 1 is registered (valid: expanded learning does not depend on
    # school enrollment dates), student 3 is registered for ASES (any expanded-learning registration counts),
    # student 2 is not registered (WB-ENROLLED). July 15 AR of student 2: AR never needs an enrollment.
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    rows = ["100001,,6000100,2025-07-14,240,ELO-P", "100003,,6000200,2025-07-14,240,ELO-P",
            "100002,,6000100,2025-07-14,240,ELO-P", "100002,,6000100,2025-07-15,240,AR"]
    import_export(make_run(tmp_path), SqlReader(district), store, export(rows), "attendance.csv",
                  registrations=registrations([r for r, rule in REG_ROWS if rule is None]))
    out = writeback_stage(make_run(tmp_path, "w"), SqlReader(district), writeback.SqlTarget(district), store, "write",
                          ceiling=0.5)
    assert (out["written"], out["invalid"], out["rules"]) == (3, 1, {"WB-ENROLLED": 1})
    assert participation(district) == [(1, 100, "2025-07-14", 240, "ELO-P"), (2, 100, "2025-07-15", 240, "AR"),
                                       (3, 200, "2025-07-14", 240, "ELO-P")]
    invalid = (tmp_path / "work" / "w" / "report" / "writeback_invalid.csv").read_text()
    assert "100002" in invalid and "no expanded-learning registration" in invalid
    # and the reconciliation does not call the registered students' summer days "not enrolled"
    rec = reconcile_stage(make_run(tmp_path, "r"), SqlReader(district), store)
    assert rec["kinds"]["not_enrolled"]["days"] == 1 and rec["kinds"]["missing_in_sis"]["days"] == 1


def test_prior_year_sis_rows_never_appear_in_this_years_reconciliation(district, tmp_path):
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    import_export(make_run(tmp_path), SqlReader(district), store, export([ROWS[0][0], ROWS[1][0]]), "attendance.csv")
    writeback_stage(make_run(tmp_path, "w"), SqlReader(district), writeback.SqlTarget(district), store, "write",
                    ceiling=0.5)
    with district.begin() as conn:   # March 2025 is in 2024-25; July 1 2026 in 2026-27
        conn.execute(sa.text("INSERT INTO U_AFTERSCHOOL_PARTICIPATION (STUDENTID, SCHOOLID, PARTICIPATION_DATE, "
                             "MINUTES, PROGRAM, SOURCE_ROW_HASH) VALUES (1, 100, :day, 60, 'ELO-P', 'x')"),
                     [{"day": d} for d in ("2025-03-10", "2025-06-30", "2026-07-01")])
    out = reconcile_stage(make_run(tmp_path, "r"), SqlReader(district), store)
    assert out["kinds"]["extra_in_sis"]["days"] == 0 and out["with_discrepancy"] == 0
    months = (tmp_path / "work" / "r" / "report" / "reconciliation.csv").read_text()
    assert "2025-10" in months and "2025-03" not in months and "2025-06" not in months and "2026-07" not in months
    # and the write-back's plan ignores them too (2 unchanged, nothing else)
    again = writeback_stage(make_run(tmp_path, "w2"), SqlReader(district), writeback.SqlTarget(district), store,
                            "dry_run", ceiling=0.5)
    assert (again["inserts"], again["updates"], again["unchanged"]) == (0, 0, 2)


def test_a_day_held_back_after_it_was_written_is_held_back_not_extra(district, tmp_path):
    from calpads.afterschool.sis_data import read_snapshot
    from calpads.afterschool.stages import compare
    from calpads.health.checks import afterschool_days

    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    first = ["100001,,6000100,2025-10-06,90,ELO-P", "100001,,6000100,2025-10-07,60,ELO-P"]
    import_export(make_run(tmp_path), SqlReader(district), store, export(first), "attendance.csv")
    writeback_stage(make_run(tmp_path, "w"), SqlReader(district), writeback.SqlTarget(district), store, "write",
                    ceiling=0.5)
    # the platform now has Oct 7 twice with different minutes: both rows are held back; it also adds Oct 8,
    # also twice: the platform has 3 days, the SIS 2 (Oct 6 and the Oct 7 written before)
    second = [first[0], first[1], "100001,,6000100,2025-10-07,75,ELO-P", "100001,,6000100,2025-10-08,30,ELO-P",
              "100001,,6000100,2025-10-08,45,ELO-P"]
    import_export(make_run(tmp_path, "i2"), SqlReader(district), store, export(second), "attendance.csv")
    out = reconcile_stage(make_run(tmp_path, "r"), SqlReader(district), store)
    days = {k: v["days"] for k, v in out["kinds"].items()}
    assert (days["held_back"], days["extra_in_sis"], days["missing_in_sis"], days["removed_in_platform"]) == \
        (2, 0, 0, 0)
    row = next(line for line in (tmp_path / "work" / "r" / "report" / "reconciliation.csv").read_text().splitlines()
               if line.startswith("100001,2025-10"))
    assert row.startswith("100001,2025-10,3,2,")       # platform 3 days, SIS 2
    # the integration_health spot-check reads the same comparison
    store_ = AfterschoolStore(store)
    snap = read_snapshot(SqlReader(district), date(2025, 7, 1), date(2026, 6, 30))
    rows, counts = compare("2025-2026", store_.staged("1234567", "2025-2026"), snap, store_)
    sampled, _ = afterschool_days(rows, run_date=date(2025, 11, 3))
    assert sampled.ok is False and "platform 3 days (2 held back at import), SIS 2 days" in sampled.detail
    assert "held_back 2 (data quality)" in sampled.detail and "extra_in_sis" not in sampled.detail


def test_same_day_duplicate_sessions_give_leap_the_days_the_sis_has(district, tmp_path):
    """Two different ELO-P sessions on one day are both held back: neither LEAP nor the SIS counts the day."""
    from calpads import pipeline
    from calpads.afterschool.sis_data import read_snapshot
    from calpads.health.checks import leap_vs_sis
    from calpads.run_scope import RunScope

    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    rows = ["100001,,6000100,2025-10-06,90,ELO-P", "100001,,6000100,2025-10-07,60,ELO-P",
            "100001,,6000100,2025-10-08,60,ELO-P", "100001,,6000100,2025-10-08,90,ELO-P",   # the same day twice
            "100003,,6000200,2025-10-06,60,ASES", "100003,,6000200,2025-10-06,30,ELO-P"]    # two programs: 1 day
    import_export(make_run(tmp_path), SqlReader(district), store, export(rows), "attendance.csv",
                  registrations=registrations(["100001,,ELO-P,2025-08-01", "100003,,ASES,2025-08-01"]))
    writeback_stage(make_run(tmp_path, "w"), SqlReader(district), writeback.SqlTarget(district), store, "write",
                    ceiling=0.5)
    scope = RunScope.from_params("LEAP", {"academic_year": "2025-2026", "mode": "non_submission"},
                                 today=date(2026, 1, 15))
    ctx = pipeline.RunContext("LEAP", "calpads_leap", "manual__l", scope, tmp_path / "work" / "leap", tmp_path / "pub")
    pipeline.extract(ctx, district, store_engine=store)
    pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)
    pipeline.diff(ctx, store)
    pipeline.publish(ctx)
    leap = {r.split("^")[2]: r.split("^")[6] for r in
            (Path(str(ctx.run_folder)) / "LEAP_1234567_2025-2026.txt").read_text().splitlines()}
    assert leap == {"1.194": "2", "3.194": "1"}           # student 1: Oct 6, 7 (Oct 8 held back); 3: Oct 6
    snap = read_snapshot(SqlReader(district), date(2025, 7, 1), date(2026, 6, 30))
    check = leap_vs_sis(pd_frame({"student_id": ["1", "3"], "elp_days": [leap["1.194"], leap["3.194"]]}),
                        snap.participation)
    assert check.ok is True and "has 2 students with 3 days" in check.detail
    held = (Path(str(ctx.run_folder)) / "report" / "not_extracted.csv").read_text()
    assert "100001" in held and "2 expanded-learning session(s) held back by the afterschool import " \
        "(AS-DUPLICATE-SESSION)" in held


def pd_frame(data: dict):
    import pandas as pd

    return pd.DataFrame(data)


def test_leap_and_stas_say_what_to_do_when_afterschool_sync_has_not_run(district, tmp_path):
    from calpads import pipeline
    from calpads.afterschool.store import AfterschoolNotImported
    from calpads.run_scope import RunScope

    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    scope = RunScope.from_params("LEAP", {"academic_year": "2025-2026"}, today=date(2026, 1, 15))
    ctx = pipeline.RunContext("LEAP", "calpads_leap", "manual__l", scope, tmp_path / "work" / "leap", tmp_path / "pub")
    with pytest.raises(AfterschoolNotImported, match="Run afterschool_sync for 2025-2026"):
        pipeline.extract(ctx, district, store_engine=store)
    # STAS: a district that never imported afterschool data gets 13.24 blank; one that imported another year fails
    stas = RunScope.from_params("STAS", {"academic_year": "2025-2026"}, today=date(2026, 1, 15))
    sctx = pipeline.RunContext("STAS", "calpads_stas", "manual__s", stas, tmp_path / "work" / "stas", tmp_path / "pub")
    pipeline.extract(sctx, district, store_engine=store)
    import pandas as pd

    assert pd.read_parquet(sctx.path(pipeline.RECORDS))["attendance_recovery_days"].isna().all()
    earlier = AfterschoolRun("afterschool_sync", "old", "2024-2025", date(2025, 6, 1), tmp_path / "work" / "old",
                             tmp_path / "pub")
    import_export(earlier, SqlReader(district), store, export([]), "attendance.csv")
    with pytest.raises(AfterschoolNotImported, match="STAS 13.24 Attendance Recovery Days needs"):
        pipeline.extract(sctx, district, store_engine=store)


@pytest.mark.postgres
def test_health_fails_when_update_on_the_participation_table_is_denied(pg_database):
    import uuid

    admin = sa.create_engine(pg_database)
    build_district(admin)
    role = f"calpads_wb_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        conn.exec_driver_sql(f"GRANT INSERT ON u_afterschool_participation TO {role}")
    login = sa.create_engine(sa.make_url(pg_database).set(username=role))
    try:
        w = flows_sql(login, ["write_participation"])[0]
        assert w.ok is False and f"({role}) cannot UPDATE (permission denied)" in w.detail
        assert "INSERT" not in w.detail.split("cannot")[1].split("on")[0]       # the INSERT itself was allowed
        assert "INSERT and UPDATE" in w.ask and w.roles == ["it"]
        with admin.begin() as conn:
            conn.exec_driver_sql(f"GRANT UPDATE ON u_afterschool_participation TO {role}")
        assert flows_sql(login, ["write_participation"])[0].ok is True
        with admin.connect() as conn:       # both probes were rolled back
            assert conn.exec_driver_sql("SELECT count(*) FROM u_afterschool_participation").scalar() == 0
    finally:
        login.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def test_the_export_over_http_brings_both_files(tmp_path):
    """The afterschool_api connection: a local server answering as the platform's export endpoints do."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from airflow.models.connection import Connection

    from calpads.afterschool.ingest import fetch_http, parse

    files = {"/exports/attendance": export([ROWS[0][0]]), "/exports/registrations": registrations(
        ["100001,,ELO-P,2025-08-01"])[0]}

    class Platform(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = files.get(self.path)
            status = 401 if self.headers.get("Authorization") != "Bearer t0ken" else 200 if body else 404
            self.send_response(status)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            self.wfile.write(body if status == 200 else b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Platform)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        extra = {"endpoint": "/exports/attendance", "registrations_endpoint": "/exports/registrations",
                 "token": "t0ken"}
        conn = Connection(conn_id="afterschool_api", conn_type="http", host="127.0.0.1", schema="http",
                          port=server.server_port, extra=json.dumps(extra))
        data, name, ctype = fetch_http(conn)
        reg, reg_name, reg_type = fetch_http(conn, kind="registrations")
        assert (name, reg_name) == ("/exports/attendance", "/exports/registrations")
        assert parse(data, name, ctype).rows["student_number"].tolist() == ["100001"]
        assert parse(reg, reg_name, reg_type, kind="registrations").rows["program"].tolist() == ["ELO-P"]
        wrong = Connection(conn_id="afterschool_api", conn_type="http", host="127.0.0.1", schema="http",
                           port=server.server_port, extra=json.dumps({**extra, "token": "nope"}))
        with pytest.raises(PermissionError, match="HTTP 401"):
            fetch_http(wrong, kind="registrations")
    finally:
        server.shutdown()


def test_stas_lists_the_attendance_recovery_rows_the_import_held_back(district, tmp_path):
    import pandas as pd

    from calpads import pipeline
    from calpads.run_scope import RunScope

    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    rows = ["100003,,6000200,2025-10-11,240,AR", "100001,,6000100,2025-10-11,700,AR",   # 700 minutes: held back
            "100001,,6000100,2025-10-12,90,ELO-P"]
    import_export(make_run(tmp_path), SqlReader(district), store, export(rows), "attendance.csv")
    scope = RunScope.from_params("STAS", {"academic_year": "2025-2026"}, today=date(2026, 1, 15))
    ctx = pipeline.RunContext("STAS", "calpads_stas", "manual__s", scope, tmp_path / "work" / "stas", tmp_path / "pub")
    pipeline.extract(ctx, district, store_engine=store)
    held = pd.read_parquet(ctx.path(pipeline.NOT_EXTRACTED))
    assert held[["local_student_id", "reason"]].values.tolist() == [
        ["100001", "1 attendance recovery session(s) held back by the afterschool import (AS-MINUTES-RANGE): not "
                   "counted in 13.24 until corrected in the afterschool platform"]]
