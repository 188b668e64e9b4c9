"""Afterschool pure parts: strict CSV reading, reconciliation kinds, attendance recovery, deadlines, docs.
Expected values are worked out by hand in the comments."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
import pytest

from calpads.afterschool.ingest import MalformedExport, parse_csv, parse_json
from calpads.afterschool.reconcile import reconcile, summary
from calpads.afterschool.recovery import recovered_days, recovery_candidates
from calpads.deadlines import watch
from calpads.health.checks import afterschool_days, leap_vs_sis, recent_runs
from tests.conftest import ROOT

HEADER = "student_number,ssid,school_code,session_date,minutes,program"


# --------------------------------------------------------------------------- ingest
def test_bom_and_crlf_are_accepted_and_blank_is_none():
    data = ("\ufeff" + HEADER + "\r\n100001,,6000100,2025-10-06,90,ELO-P\r\n100002,1000000002,6000100,"
            "2025-10-07,60,ASES\r\n\r\n").encode()
    ex = parse_csv(data, "attendance.csv")
    assert list(ex.rows["student_number"]) == ["100001", "100002"]
    assert ex.rows.loc[0, "ssid"] is None
    assert list(ex.rows["line"]) == [1, 2]
    assert len(ex.checksum) == 64


def test_columns_in_another_order_are_accepted():
    ex = parse_csv(b"program,minutes,session_date,school_code,ssid,student_number\nAR,240,2025-10-11,6000100,,1\n",
                   "a.csv")
    assert ex.rows.iloc[0].to_dict() | {"line": 1} == {"student_number": "1", "ssid": None, "school_code": "6000100",
                                                       "session_date": "2025-10-11", "minutes": "240", "program": "AR",
                                                       "line": 1}


@pytest.mark.parametrize("data, words", [
    ((HEADER + "\n100001,,6000100,2025-10-06,90,ELO-P\n").encode("utf-16"), "not UTF-8"),
    ((HEADER + "\n1,,6000100,2025-10-06,90,\xe9l\xe9\n").encode("latin-1"), "not UTF-8"),
    (b"student_number,school_code,session_date,minutes,program\n1,6000100,2025-10-06,90,AR\n",
     "missing column(s) ssid"),
    ((HEADER + ",site_name\n1,,6000100,2025-10-06,90,AR,Oak\n").encode(), "unexpected column(s) 'site_name'"),
    ((HEADER + "\n1,,6000100,2025-10-06,90,AR,extra\n").encode(), "data line 1: 7 fields"),
    (b"", "empty"),
])
def test_malformed_files_are_rejected_whole_with_a_clear_message(data, words):
    with pytest.raises(MalformedExport) as exc:
        parse_csv(data, "attendance.csv")
    assert words in str(exc.value) and "Nothing" in str(exc.value)


def test_json_endpoint_with_the_same_columns():
    ex = parse_json(b'{"records": [{"student_number": "1", "ssid": null, "school_code": "6000100", '
                    b'"session_date": "2025-10-06", "minutes": 90, "program": "AR"}]}', "/exports/attendance")
    assert ex.rows.loc[0, "minutes"] == "90" and ex.rows.loc[0, "ssid"] is None
    with pytest.raises(MalformedExport, match="missing column"):
        parse_json(b'[{"student_number": "1"}]', "/x")


# --------------------------------------------------------------------------- reconciliation
def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


def test_each_discrepancy_kind_per_student_and_month():
    students = pd.DataFrame({"student_id": [1, 2, 3, 4], "student_number": ["S1", "S2", "S3", "S4"]})
    enrollments = pd.DataFrame({
        "student_id": [1, 2, 3, 4],
        "entrydate": [ts("2025-08-13")] * 4,
        "exitdate": [pd.NaT, ts("2025-10-15"), pd.NaT, pd.NaT],        # student 2 left (last day Oct 14)
    })
    absences = pd.DataFrame({"student_id": [3], "date": [ts("2025-10-08")]})
    platform = pd.DataFrame({
        "student_id": [1, 1, 1, 1, 2, 2, 3, 3],
        # student 1: two programs on Oct 6 count as one day; Nov 3 not yet in the SIS
        "session_date": ["2025-10-06", "2025-10-06", "2025-10-07", "2025-11-03", "2025-10-14", "2025-10-20",
                         "2025-10-07", "2025-10-08"],
    })
    sis = pd.DataFrame({"studentid": [1, 1, 2, 2, 3, 3, 4],
                        "participation_date": ["2025-10-06", "2025-10-07", "2025-10-14", "2025-10-20",
                                               "2025-10-07", "2025-10-08", "2025-10-09"]})
    rows = reconcile(platform, sis, enrollments, absences, students)
    got = {(r.local_student_id, r.month): (r.platform_days, r.sis_days, r.missing_in_sis, r.extra_in_sis,
                                           r.absent_in_sis, r.not_enrolled, r.status)
           for r in rows.itertuples()}
    assert got == {
        ("S1", "2025-10"): (2, 2, 0, 0, 0, 0, "ok"),
        ("S1", "2025-11"): (1, 0, 1, 0, 0, 0, "discrepancy"),          # missing in SIS
        ("S2", "2025-10"): (2, 2, 0, 0, 0, 1, "discrepancy"),          # Oct 20: after the exit
        ("S3", "2025-10"): (2, 2, 0, 0, 1, 0, "discrepancy"),          # Oct 8: absent in the SIS
        ("S4", "2025-10"): (0, 1, 0, 1, 0, 0, "discrepancy"),          # SIS day the platform lacks
    }
    s = summary(rows, unknown_students=2)
    assert {k: v["days"] for k, v in s.items()} == {"missing_in_sis": 1, "extra_in_sis": 1, "absent_in_sis": 1,
                                                    "not_enrolled": 1, "held_back": 0, "removed_in_platform": 0,
                                                    "unknown_student": 2, "total": 7}


def spot_check_district() -> dict:
    """Student 1 (id 1, S1) in October: the platform's export has 7 days. Oct 1-5 staged and written to the SIS;
    Oct 6 held back at import (two conflicting sessions); Oct 7 held back, but written by an earlier run before
    the platform's row went bad. The SIS also has Oct 8 written earlier and since deleted in the platform, and
    Oct 9 entered in the SIS by hand."""
    days = [f"2025-10-0{d}" for d in range(1, 10)]
    return dict(
        platform=pd.DataFrame({"student_id": [1] * 5, "session_date": days[:5], "program": "ELO-P"}),
        held=pd.DataFrame({"student_id": [1, 1, 1], "session_date": [days[5], days[5], days[6]]}),
        sis=pd.DataFrame({"studentid": [1] * 8, "participation_date": [*days[:5], days[6], days[7], days[8]]}),
        written=pd.DataFrame({"studentid": [1] * 7, "participation_date": [*days[:5], days[6], days[7]]}),
        enrollments=pd.DataFrame({"student_id": [1], "entrydate": [ts("2025-08-13")], "exitdate": [pd.NaT]}),
        absences=pd.DataFrame({"student_id": pd.Series(dtype="int64"), "date": pd.Series(dtype="datetime64[ns]")}),
        students=pd.DataFrame({"student_id": [1], "student_number": ["S1"]}),
    )


def test_held_back_days_are_their_own_kind_and_written_days_are_never_extra():
    d = spot_check_district()
    rows = reconcile(d["platform"], d["sis"], d["enrollments"], d["absences"], d["students"], held=d["held"],
                     written=d["written"])
    r = rows.iloc[0]
    # platform 7 days (5 staged + Oct 6, 7 held back); SIS 8 days (Oct 1-5, 7, 8, 9)
    assert (r.platform_days, r.sis_days) == (7, 8)
    assert (r.missing_in_sis, r.held_back, r.removed_in_platform, r.extra_in_sis) == (0, 2, 1, 1)
    assert r.status == "discrepancy"
    # the spot-check sees the same: the held-back days as held back, never "ok" and never "extra"
    sampled, everyone = afterschool_days(rows, run_date=date(2025, 11, 3), sample_size=10)
    assert sampled.ok is False and everyone.ok is False
    assert "platform 7 days (2 held back at import), SIS 8 days; 1 student(s) differ" in sampled.detail
    assert "held_back 2 (data quality), removed_in_platform 1 (process), extra_in_sis 1 (process)" in sampled.detail
    assert "import_held_back.csv" in sampled.ask and set(sampled.roles) == {"afterschool", "coordinator"}


def test_summer_days_of_a_registered_student_are_not_flagged_not_enrolled():
    # enrolled from Aug 13; July 14 ELO-P and AR days: AR never needs an enrollment, ELO-P only when unregistered
    platform = pd.DataFrame({"student_id": [1, 2, 3], "session_date": ["2025-07-14"] * 3,
                             "program": ["ELO-P", "ELO-P", "AR"]})
    enrollments = pd.DataFrame({"student_id": [1, 2, 3], "entrydate": [ts("2025-08-13")] * 3, "exitdate": pd.NaT})
    students = pd.DataFrame({"student_id": [1, 2, 3], "student_number": ["S1", "S2", "S3"]})
    sis = pd.DataFrame({"studentid": [1, 2, 3], "participation_date": ["2025-07-14"] * 3})
    none = pd.DataFrame({"student_id": pd.Series(dtype="int64"), "date": pd.Series(dtype="datetime64[ns]")})
    rows = reconcile(platform, sis, enrollments, none, students, registered={1})
    assert dict(zip(rows["local_student_id"], rows["not_enrolled"], strict=True)) == {"S1": 0, "S2": 1, "S3": 0}


# --------------------------------------------------------------------------- attendance recovery
def test_recovered_days_grade_minutes_day_cap_increments_suspension_and_ten_day_cap():
    ar = pd.DataFrame({
        "student_id": [1, 1, 1, 2, 2, 3] + [4] * 12,
        "session_date": ["2025-10-04", "2025-10-11", "2025-10-18", "2025-10-04", "2025-10-04", "2025-10-04"]
        + [f"2025-11-{d:02d}" for d in range(1, 13)],
        # 1 (grade 2, 230 min/day): 3 x 150 = 450 -> 450 // 230 = 1 day
        # 2 (grade 5, 240): one day, 2 x 200 = 400, capped at 240 -> 1 day
        # 3 (K, 180): 179 minutes -> 120 in whole hours -> 0 days
        # 4 (grade 8): 12 days x 240 -> 12 earned, capped at 10
        "minutes": [150, 150, 150, 200, 200, 179] + [240] * 12,
    })
    absences = pd.DataFrame({
        "student_id": [1, 1, 2, 2, 3] + [4] * 11,
        "date": [ts("2025-09-02"), ts("2025-09-03"), ts("2025-09-04"), ts("2025-09-05"), ts("2025-09-08")]
        + [ts(f"2025-09-{d:02d}") for d in range(10, 21)],
        # student 2's second absence is a suspension: not recoverable
        "recoverable": [True, True, True, False, True] + [True] * 11,
    })
    grades = pd.DataFrame({"student_id": [1, 2, 3, 4], "grade_level": [2, 5, 0, 8]})
    r = recovered_days(ar, absences, grades).set_index("student_id")
    assert r.loc[1, ["ar_minutes", "earned_days", "recoverable_absences", "recovered_days"]].tolist() == [360, 1, 2, 1]
    # student 1 in hourly increments: 150 -> 120 per day, 3 x 120 = 360 -> 1 day at 230
    assert r.loc[2, ["earned_days", "recoverable_absences", "recovered_days"]].tolist() == [1, 1, 1]
    assert r.loc[3, ["ar_minutes", "earned_days", "recovered_days"]].tolist() == [120, 0, 0]
    assert r.loc[4, ["earned_days", "recoverable_absences", "recovered_days"]].tolist() == [12, 11, 10]


def test_recovery_list_is_students_near_chronic_who_can_still_recover():
    # School 100 in session on 20 days (Sep 1-26 weekdays); as of Sep 26 every student expects 20 days.
    days = pd.bdate_range("2025-09-01", "2025-09-26")
    calendar = pd.DataFrame({"schoolid": 100, "date": days})
    enrollments = pd.DataFrame({"student_id": [1, 2, 3], "schoolid": 100, "entrydate": ts("2025-08-13"),
                                "exitdate": pd.NaT})
    # 1: 3 absences = 15% (chronic), all recoverable, none recovered -> can recover 3
    # 2: 2 absences = 10%, both suspensions -> nothing recoverable -> not listed
    # 3: 1 absence = 5% -> below 8% -> not listed
    absences = pd.DataFrame({"student_id": [1, 1, 1, 2, 2, 3],
                             "date": [days[0], days[1], days[2], days[0], days[1], days[3]],
                             "recoverable": [True, True, True, False, False, True]})
    students = pd.DataFrame({"student_id": [1, 2, 3], "student_number": ["S1", "S2", "S3"], "grade_level": [4, 4, 4]})
    rec = recovered_days(pd.DataFrame(columns=["student_id", "session_date", "minutes"]), absences,
                         students[["student_id", "grade_level"]])
    out = recovery_candidates(recovered=rec, absences=absences, enrollments=enrollments, calendar=calendar,
                              students=students, as_of=date(2025, 9, 26))
    assert out[["local_student_id", "status", "expected_days", "absent_days", "can_still_recover"]].values.tolist() \
        == [["S1", "chronic", 20, 3, 3]]
    assert bool(out.loc[0, "recovery_brings_below_threshold"])      # 0 / 20 < 10%


# --------------------------------------------------------------------------- health (pure)
def test_afterschool_days_checks_fail_for_the_right_reason():
    platform = pd.DataFrame({"student_id": [1, 1, 2], "session_date": ["2025-10-06", "2025-10-07", "2025-10-06"]})
    sis = pd.DataFrame({"studentid": [1, 2], "participation_date": ["2025-10-06", "2025-10-06"]})
    enrollments = pd.DataFrame({"student_id": [1, 2], "entrydate": [ts("2025-08-13")] * 2, "exitdate": pd.NaT})
    students = pd.DataFrame({"student_id": [1, 2], "student_number": ["S1", "S2"]})
    none = pd.DataFrame({"student_id": pd.Series(dtype="int64"), "date": pd.Series(dtype="datetime64[ns]")})
    rows = reconcile(platform, sis, enrollments, none, students)
    sampled, everyone = afterschool_days(rows, run_date=date(2025, 11, 3), sample_size=10)
    assert sampled.ok is False and "platform 3 days (0 held back at import), SIS 2 days; 1 student(s) differ: " \
        "missing_in_sis 1 (integration)." in sampled.detail
    assert everyone.ok is False and "1 student-months differ" in everyone.detail
    assert "Does our afterschool attendance data currently flow into the SIS?" in sampled.ask
    assert sampled.roles == ["it"]
    # rows of student numbers the SIS does not know fail the all-students check
    ok_rows = reconcile(platform.iloc[:1], sis.iloc[:1], enrollments, none, students)
    assert [r.ok for r in afterschool_days(ok_rows, run_date=date(2025, 11, 3))] == [True, True]
    unknown = afterschool_days(ok_rows, run_date=date(2025, 11, 3), unknown_students=2)[1]
    assert unknown.ok is False and "2 platform row(s) name a student number the SIS does not know" in unknown.detail
    missing = afterschool_days(None, run_date=date(2025, 11, 3))
    assert [r.ok for r in missing] == [False, False] and "No afterschool attendance" in missing[0].detail


def test_leap_vs_sis_compares_day_counts_per_student():
    # LEAP file: student 1 with 3 days, 2 with 0. SIS: 1 has Oct 6 (ELO-P and ASES: one day), Oct 7, and an AR day
    # (not expanded learning) -> 2 days; 3 (not in the file) has 1 day.
    leap = pd.DataFrame({"student_id": ["1", "2"], "elp_days": ["3", "0"]})
    sis = pd.DataFrame({"studentid": [1, 1, 1, 1, 3],
                        "participation_date": ["2025-10-06", "2025-10-06", "2025-10-07", "2025-10-11", "2025-10-06"],
                        "program": ["ELO-P", "ASES", "ELO-P", "AR", "ELO-P"]})
    r = leap_vs_sis(leap, sis)
    assert r.ok is False and "1 student(s) differ (1 with more days in LEAP, 0 with more in the SIS)" in r.detail
    assert "Not compared: 1 student(s) with 1 expanded-learning days in the SIS" in r.detail
    assert leap_vs_sis(pd.DataFrame({"student_id": ["1"], "elp_days": ["2"]}), sis).ok is True


def test_recent_runs_check():
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    found = {"fresh": now - timedelta(hours=10), "stale": now - timedelta(days=3), "never": None}
    res = {r.check: r.ok for r in recent_runs(found, now, found.get)}
    assert res == {"recent_fresh": True, "recent_stale": False, "recent_never": False}


# --------------------------------------------------------------------------- deadlines
def test_calendar_defaults_and_census_day_rule():
    cal = watch.load_calendar()
    w = {x.key: x for x in watch.windows(cal, "2025-2026")}
    assert w["fall1"].deadline == date(2025, 12, 12) and w["fall1"].census_day == date(2025, 10, 1)
    assert w["eoy1"].deadline == date(2026, 7, 31) and w["eoy2"].deadline == date(2026, 8, 17)
    nxt = {x.key: x for x in watch.windows(cal, "2026-2027")}
    assert nxt["fall1"].census_day == date(2026, 10, 7) and nxt["fall1"].deadline is None      # derived only
    soon, unknown = watch.due_soon(cal, date(2026, 7, 10), ["2025-2026"])
    assert [x.key for x in soon] == ["eoy1"]                         # Jul 31 within 30 days; Aug 17 not yet
    cal2 = watch.load_calendar("years:\n  2026-2027:\n    fall1: {deadline: 2026-12-11}\n")
    assert {x.key: x for x in watch.windows(cal2, "2026-2027")}["fall1"].deadline == date(2026, 12, 11)


def test_readiness_reads_open_errors_and_pending_changes(tmp_path):
    import json

    run = tmp_path / "2025-2026" / "SPRG" / "manual_1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({
        "run_id": "manual_1", "params": {"mode": "submission"},
        "validation": {"records_held_back": 3, "rules": {"SPRG-CPA-113": {"count": 3, "severity": "error"}}},
        "counts": {"diff": {"new": 5, "changed": 2, "deleted": 1, "unchanged": 90, "records_out": 8}}}))
    r = watch.readiness(tmp_path, "2025-2026", "SPRG")
    assert r["status"] == "open errors" and r["open_errors"] == 3 and r["error_rules"] == {"SPRG-CPA-113": 3}
    assert r["pending_changes"] == {"new": 5, "changed": 2, "deleted": 1}        # unchanged records are not pending
    assert watch.readiness(tmp_path, "2025-2026", "LEAP")["status"] == "never run"


def test_leap_is_not_ready_while_its_integration_checks_fail(tmp_path):
    import json

    run = tmp_path / "2025-2026" / "LEAP" / "manual_1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({
        "run_id": "manual_1", "validation": {"records_held_back": 0, "rules": {}},
        "counts": {"diff": {"new": 0, "changed": 0, "deleted": 0, "unchanged": 464}}}))
    (tmp_path / "integration").mkdir()
    checks = [{"check": "leap_vs_sis", "title": "Test LEAP extract: days match the SIS", "ok": False},
              {"check": "recent_calpads_sprg", "title": "Last successful run of calpads_sprg", "ok": False},
              {"check": "flow_read_enrollment", "title": "Data flow: read enrollment data", "ok": True}]
    (tmp_path / "integration" / "health.json").write_text(json.dumps({"checks": checks}))
    health = watch.latest_health(tmp_path)
    r = watch.readiness(tmp_path, "2025-2026", "LEAP", health)
    assert r["status"] == "integration checks failing" and r["failing_checks"] == ["Test LEAP extract: days match "
                                                                                  "the SIS"]
    assert r["pending_changes"] == {}
    checks[0]["ok"] = True
    assert watch.readiness(tmp_path, "2025-2026", "LEAP", {"checks": checks})["status"] == "ready"
    eoy1 = [w for w in watch.windows(watch.load_calendar(), "2025-2026") if w.key == "eoy1"]
    ready = {rt: watch.readiness(tmp_path, "2025-2026", rt, health) for rt in eoy1[0].files}
    subject, body = watch.email(date(2026, 7, 6), eoy1, [], ready)
    assert "integration checks failing" in body and "Test LEAP extract: days match the SIS" in body
    assert "unchanged" not in body and "464" not in body


# --------------------------------------------------------------------------- migrations and docs
def test_packaged_migrations_match_the_sql_folder():
    pkg = ROOT / "include" / "calpads" / "afterschool" / "sql"
    for f in sorted((ROOT / "sql" / "sis").glob("*.sql")):
        assert (pkg / f.name).read_text() == f.read_text(), f.name


def test_data_flows_page_names_tables_permissions_and_recipients():
    from calpads.health.dataflows_doc import IntegrationConfig, render

    md, page = render(IntegrationConfig(sis_source="sql", writeback="sql", connections={"sis_db": "postgres sis-db"},
                                        publish_root="file:///srv/calpads", recipients=["team@district.example"],
                                        afterschool_source="file drop /srv/drop"))
    assert "U_AFTERSCHOOL_PARTICIPATION" in md and "INSERT, UPDATE" in md and "team@district.example" in md
    assert "ATTENDANCE" in page and "file:///srv/calpads/<year>/SPRG" in md
    # LEAP and STAS read the export afterschool_sync staged, not the platform's files
    leap = next(line for line in md.splitlines() if line.startswith("| calpads_leap, calpads_stas |"))
    assert "afterschool_sessions, afterschool_registrations" in leap and "calpads_store" in leap
    assert "an INSERT and an UPDATE of U_AFTERSCHOOL_PARTICIPATION, rolled back" in md


def test_data_flows_page_is_styled_escaped_and_lists_every_dag():
    from calpads.extracts.registry import record_types
    from calpads.health.dataflows_doc import IntegrationConfig, render

    assert record_types() == ["LEAP", "SENR", "SPRG", "STAS"]
    _, page = render(IntegrationConfig(sis_source="sql", writeback="sql", connections={"sis_db": "postgres <b>"},
                                       publish_root="file:///srv/calpads", recipients=["team@district.example"],
                                       afterschool_source="file drop /srv/drop", record_types=record_types()))
    assert "<style>" in page and "postgres &lt;b&gt;" in page
    from airflow.dag_processing.dagbag import DagBag

    dags = set(DagBag(dag_folder=str(ROOT / "dags")).dag_ids)
    listed = {d.strip() for cell in re.findall(r'<td class="dag">([^<]+)</td>', page) for d in cell.split(",")}
    assert dags <= listed, dags - listed
