"""SENR exits (the SIS's CALPADS enrollment codes) and STAS days counted up to the run's date, through the
pipeline (extract -> gate -> diff -> publish) on SQLite and PostgreSQL SIS databases.

The district below uses the sis_fixtures calendar (2025-08-13 .. 2026-06-04, weekdays, holidays Sep 1,
Dec 22 - Jan 2, Feb 16); schools A = 100 (CDS 1111111) and B = 200 (CDS 2222222). EXITDATE is exclusive:
the last day is the last in-session day before it. Every expected value is worked out from these rows.

1 grade 12 at A, Aug 13 - EXITDATE Fri Jan 23 (last day Thu Jan 22): graduate E230, completion 100, UC/CSU Y.
2 the same, E230 without a completion status: held back (SENR-E230-COMPLETION).
3 A Aug 13 - EXITDATE Mon Nov 3 (REENROLLMENTS; last day Fri Oct 31), T165 to B (receiver 2222222),
  then B from Nov 3 (STUDENTS, open).
4 A Aug 13 - EXITDATE Mon Oct 6 (last day Fri Oct 3), T165 without a receiver school: held back.
5 A Aug 13 - EXITDATE Mon Sep 15 (last day Fri Sep 12), no exit code: held back (SENR-EXIT-REASON).
6 A from Aug 13, open, primary (10); and B from Aug 13, open, secondary (20, REENROLLMENTS).
7 B, short-term (30), Tue Sep 2 - EXITDATE Tue Sep 16 (last day Mon Sep 15), T160: 14 days.
8 A from Aug 13, open; unexcused absences on Thu May 14, Fri May 15 and (entered ahead) Wed May 20, 2026.
9 a no-show at A: entry = EXITDATE = Mon Aug 18, N470: exit date reported as Sun Aug 17 (SENR0018).
"""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.demo.district import LEA_CODE as DEMO_LEA
from calpads.run_scope import RunScope
from tests.unit.sis_fixtures import DEFAULT_HOLIDAYS, FIRST_DAY, LAST_DAY, Sis, drop_enrollment_codes

LEA, A, B, CDS_A, CDS_B = "1234567", 100, 200, "1111111", "2222222"


def build_district(engine: sa.Engine) -> None:
    sis = Sis(engine)
    sis.add_school(A, CDS_A)
    sis.add_school(B, CDS_B)
    sis.insert("ATTENDANCE_CODE", [dict(ID=s + 1, SCHOOLID=s, ATT_CODE="U", DESCRIPTION="Unexcused",
                                        PRESENCE_STATUS_CD="Absent", CALPADS_CATEGORY="UNEXCUSED") for s in (A, B)])
    sis.add_student(1, last="Ames", school=A, grade=12, exit="2026-01-23", enroll_status=3, exitcode="E230",
                    completionstatus="100", uccsu_reqs_met="Y", enrollmentstatus="10")
    sis.add_student(2, last="Bell", school=A, grade=12, exit="2026-01-23", enroll_status=3, exitcode="E230")
    sis.add_reenrollment(3, A, FIRST_DAY, "2025-11-03", exitcode="T165", receiver_school=CDS_B)
    sis.add_student(3, last="Cole", school=B, entry="2025-11-03")
    sis.add_student(4, last="Dunn", school=A, exit="2025-10-06", exitcode="T165")
    sis.add_student(5, last="Eddy", school=A, exit="2025-09-15")
    sis.add_student(6, last="Ford", school=A, enrollmentstatus="10")
    sis.add_reenrollment(6, B, FIRST_DAY, None, enrollmentstatus="20")
    sis.add_student(7, last="Gray", school=B, entry="2025-09-02", exit="2025-09-16", enrollmentstatus="30",
                    exitcode="T160")
    sis.add_student(8, last="Hale", school=A)
    sis.add_student(9, last="Irwin", school=A, entry="2025-08-18", exit="2025-08-18", exitcode="N470")
    sis.insert("ATTENDANCE", [dict(ID=i, STUDENTID=student, SCHOOLID=school, ATT_DATE=day, ATTENDANCE_CODEID=school + 1,
                                   ATT_MODE_CODE="ATT_ModeDaily")
                              for i, (student, school, day) in enumerate([
                                  (8, A, "2026-05-14"), (8, A, "2026-05-15"), (8, A, "2026-05-20"),
                                  (6, B, "2025-10-01")], 1)])


@pytest.fixture(params=["sqlite", "postgresql"])
def sis(request, tmp_path):
    if request.param == "sqlite":
        eng = sa.create_engine(f"sqlite:///{tmp_path}/sis.db")
    else:
        eng = sa.create_engine(request.getfixturevalue("pg_database"))
    build_district(eng)   # no afterschool import in the store: STAS leaves 13.24 blank
    yield eng
    eng.dispose()


def run(tmp_path: Path, sis: sa.Engine, record_type: str, today: date, run_id: str = "manual__t") -> tuple[Path, dict]:
    scope = RunScope.from_params(record_type, {"academic_year": "2025-2026"}, today=today)
    ctx = pipeline.RunContext(record_type, f"calpads_{record_type.lower()}", run_id, scope,
                              tmp_path / "work" / record_type / run_id, tmp_path / "pub")
    pipeline.extract(ctx, sis)
    gated = pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)
    pipeline.diff(ctx, sa.create_engine(f"sqlite:///{tmp_path}/store.db"))
    pipeline.publish(ctx)
    return Path(str(ctx.run_folder)), gated


def rows(folder: Path, name: str) -> dict[str, list[str]]:
    return {r[2]: r for r in (ln.split("^") for ln in (folder / name).read_text().splitlines())}


def findings(folder: Path) -> set[tuple[str, str, str]]:
    with (folder / "report" / "findings.csv").open() as fh:
        return {(r["local_record_id"], r["rule_id"], r["severity"]) for r in csv.DictReader(fh)}


def senr_exit_fields(r: list[str]) -> tuple[str, ...]:
    # 1.22 start, 1.23 status, 1.25 exit date, 1.26 exit reason, 1.27 completion, 1.28 receiver, 1.29 UC/CSU
    return (r[21], r[22], r[24], r[25], r[26], r[27], r[28])


def test_senr_reports_exits_graduates_transfers_and_holds_back_incomplete_exits(tmp_path, sis):
    folder, gated = run(tmp_path, sis, "SENR", date(2026, 6, 20))
    full = rows(folder, f"SENR_{LEA}_2025-2026.txt")
    assert {k: senr_exit_fields(r) for k, r in full.items()} == {
        "1.100.20250813": ("20250813", "10", "20260122", "E230", "100", "", "Y"),
        "3.100.20250813": ("20250813", "10", "20251031", "T165", "", CDS_B, ""),
        "3.200.20251103": ("20251103", "10", "", "", "", "", ""),
        "6.100.20250813": ("20250813", "10", "", "", "", "", ""),
        "6.200.20250813": ("20250813", "20", "", "", "", "", ""),
        "7.200.20250902": ("20250902", "30", "20250915", "T160", "", "", ""),
        "8.100.20250813": ("20250813", "10", "", "", "", "", ""),
        "9.100.20250818": ("20250818", "10", "20250817", "N470", "", "", ""),
    }
    assert all(len(r) == 35 for r in full.values())
    # held back, each with the one rule it breaks; nothing else fired
    assert findings(folder) == {("2.100.20250813", "SENR-E230-COMPLETION", "error"),
                                ("4.100.20250813", "SENR-T165-RECEIVER", "error"),
                                ("5.100.20250813", "SENR-EXIT-REASON", "error")}
    assert gated["records_held_back"] == 3 and gated["records_checked"] == 11
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["notes"] == []            # the SIS has every contract v2 column


def test_a_sis_without_the_enrollment_code_columns_is_still_read(tmp_path, sis, caplog):
    drop_enrollment_codes(sis)
    with caplog.at_level("WARNING"):
        folder, gated = run(tmp_path, sis, "SENR", date(2026, 6, 20))
    full = rows(folder, f"SENR_{LEA}_2025-2026.txt")
    # every status is 10 (the secondary enrollment of 6 cannot be told apart), 1.26-1.29 blank
    assert {r[22] for r in full.values()} == {"10"}
    assert all(r[25:29] == ["", "", "", ""] for r in full.values())
    # exits are published with a warning; only the no-show (its N470 unknown: exit before start) is held back
    exited = {"1.100.20250813", "2.100.20250813", "3.100.20250813", "4.100.20250813", "5.100.20250813",
              "7.200.20250902", "9.100.20250818"}
    assert findings(folder) == {*((k, "SENR-EXIT-REASON-NOT-IN-SIS", "warning") for k in exited),
                                ("9.100.20250818", "SENR-EXIT-AFTER-START", "error")}
    assert gated["records_held_back"] == 1 and len(full) == 10
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["notes"]) == 1 and "STUDENTS.EXITCODE" in manifest["notes"][0]
    assert "REENROLLMENTS.UCCSU_REQS_MET" in (folder / "report" / "index.html").read_text()
    assert any("STUDENTS.ENROLLMENTSTATUS" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def school_days(first: date, last: date) -> int:
    """In-session days of the fixture calendar in [first, last]."""
    off = {date.fromisoformat(h) for h in DEFAULT_HOLIDAYS}
    n, day = 0, max(first, FIRST_DAY)
    while day <= min(last, LAST_DAY):
        n += day.weekday() < 5 and day not in off
        day += timedelta(days=1)
    return n


def stas_counts(r: list[str]) -> tuple[int, int, int]:
    return int(r[14]), int(r[15]), int(r[19])      # 13.15 expected, 13.16 in person, 13.20 unexcused


def test_stas_run_in_mid_may_counts_no_future_day(tmp_path, sis):
    folder, gated = run(tmp_path, sis, "STAS", date(2026, 5, 15))
    full = rows(folder, f"STAS_{LEA}_2025-2026.txt")
    to_may_15 = school_days(FIRST_DAY, date(2026, 5, 15))
    # 8: open, absent May 14 and 15; the absence entered for May 20 is a future day and does not count
    assert stas_counts(full["8.100"]) == (to_may_15, to_may_15 - 2, 2)
    assert stas_counts(full["6.100"]) == (to_may_15, to_may_15, 0)
    assert stas_counts(full["3.200"]) == (school_days(date(2025, 11, 3), date(2026, 5, 15)),) * 2 + (0,)
    assert stas_counts(full["7.200"]) == (10, 10, 0)       # short-term, Sep 2-15: 4 + 5 + 1 days
    assert stas_counts(full["1.100"]) == (school_days(FIRST_DAY, date(2026, 1, 22)),) * 2 + (0,)
    # 6's secondary enrollment at B gets no STAS record (its absence at B counts nowhere); 9 attended no day
    assert set(full) == {"1.100", "2.100", "3.100", "3.200", "4.100", "5.100", "6.100", "7.200", "8.100"}
    with (folder / "report" / "not_extracted.csv").open() as fh:
        assert [(r["local_record_id"], r["local_student_id"]) for r in csv.DictReader(fh)] == [("6.200", "100006")]
    assert gated["records_held_back"] == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counted_through"] == "2026-05-15"
    report = (folder / "report" / "index.html").read_text()
    assert "counted through 2026-05-15 (the run&#x27;s date)" in report and "Run STAS again" in report


def test_the_counting_note_says_which_day_ends_the_count():
    from calpads.extracts.stas import counting_note

    def scope(today: date) -> RunScope:
        return RunScope.from_params("STAS", {"academic_year": "2025-2026"}, today=today)

    after_the_year = counting_note(scope(date(2026, 7, 10)), LAST_DAY)
    assert after_the_year == "Days are counted through 2026-06-30 (the report end date)."
    assert "the last school day, 2026-06-04, is already counted" in counting_note(scope(date(2026, 6, 20)), LAST_DAY)
    assert "Run STAS again" in counting_note(scope(date(2026, 5, 15)), LAST_DAY)


def test_stas_after_the_year_counts_to_the_last_day_and_a_rerun_repeats_the_manifest(tmp_path, sis):
    folder, _ = run(tmp_path, sis, "STAS", date(2026, 7, 10))
    full = rows(folder, f"STAS_{LEA}_2025-2026.txt")
    whole_year = school_days(FIRST_DAY, LAST_DAY)
    assert stas_counts(full["8.100"]) == (whole_year, whole_year - 3, 3)
    manifest = (folder / "manifest.json").read_text()
    assert json.loads(manifest)["counted_through"] == "2026-06-30"       # the report end date
    again, _ = run(tmp_path, sis, "STAS", date(2026, 7, 10))
    assert (again / "manifest.json").read_text() == manifest


# -- the generated demo district ------------------------------------------------------------------------

EXIT_RULE_FIELDS = {"1.23", "1.25", "1.26", "1.27", "1.28", "1.29"}   # the rules about the enrollment's codes


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> sa.Engine:
    from calpads.demo.generator import generate_district

    path = tmp_path_factory.mktemp("demo") / "sis.db"
    eng = sa.create_engine(f"sqlite:///{path}")
    generate_district(eng, students=2000, seed=42, dirty=0.01, academic_year="2025-2026", log=lambda _m: None)
    return eng


def sis_exits(eng: sa.Engine) -> dict[str, tuple]:
    """The SIS's closed enrollments of reportable students, keyed by SENR Local Record ID, with their codes
    (this test's own reading of the tables: SSID present, student / enrollment / school not excluded)."""
    q = """
        SELECT e.sid, e.schoolid, e.entrydate, e.exitcode, e.completionstatus, e.receiver_school,
               e.uccsu_reqs_met, e.grade_level
        FROM (SELECT ID AS sid, SCHOOLID, ENTRYDATE, EXITDATE, GRADE_LEVEL, EXITCODE, COMPLETIONSTATUS,
                     RECEIVER_SCHOOL, UCCSU_REQS_MET, 0 AS excl FROM STUDENTS
              UNION ALL
              SELECT STUDENTID, SCHOOLID, ENTRYDATE, EXITDATE, GRADE_LEVEL, EXITCODE, COMPLETIONSTATUS,
                     RECEIVER_SCHOOL, UCCSU_REQS_MET, STATE_EXCLUDEFROMREPORTING FROM REENROLLMENTS) e
        JOIN STUDENTS s ON s.ID = e.sid
        JOIN SCHOOLS sc ON sc.SCHOOL_NUMBER = e.schoolid
        WHERE e.EXITDATE IS NOT NULL AND e.excl = 0 AND s.STATE_EXCLUDEFROMREPORTING = 0
          AND sc.STATE_EXCLUDEFROMREPORTING = 0 AND s.STATE_STUDENTNUMBER IS NOT NULL
          AND e.ENTRYDATE >= '2025-07-01'"""
    with eng.connect() as conn:
        return {f"{r[0]}.{r[1]}.{r[2].replace('-', '')}": tuple(r[3:]) for r in conn.exec_driver_sql(q)}


def test_demo_district_shows_exits_graduates_and_transfers_and_its_planted_exit_errors(tmp_path, demo):
    truth = pd_read(demo, "SELECT STUDENTID, SCHOOLID, ENTRYDATE, RULE_ID FROM DEMO_PLANTED_SENR")
    planted = {(f"{s}.{sc}.{e.replace('-', '')}", rule) for s, sc, e, rule in truth}
    assert {rule for _, rule in planted} == {"SENR-EXIT-REASON", "SENR-E230-COMPLETION", "SENR-T165-RECEIVER"}

    folder, gated = run(tmp_path, demo, "SENR", date(2026, 6, 20))
    with (folder / "report" / "findings.csv").open() as fh:
        found = {(r["local_record_id"], r["rule_id"]) for r in csv.DictReader(fh) if r["field"] in EXIT_RULE_FIELDS}
    assert found == planted                               # each planted exit error, with its rule, and nothing else

    exits = sis_exits(demo)
    held = {rid for rid, _ in planted}
    full = rows(folder, f"SENR_{DEMO_LEA}_2025-2026.txt")
    published = {k: (r[25], r[26], r[27], r[28], r[23]) for k, r in full.items() if r[24]}
    # every exit of the SIS is published with its codes, except the held-back ones
    assert set(published) == set(exits) - held
    for rid, (reason, completion, receiver, uccsu, _grade) in published.items():
        assert (reason, completion or None, receiver or None, uccsu or None) == exits[rid][:4], rid
    reasons = [v[0] for v in published.values()]
    graduates = [v for v in published.values() if v[0] == "E230"]
    assert len(graduates) >= 3 and all(g[1] == "100" and g[3] in ("Y", "N") and g[4] == "12" for g in graduates)
    assert reasons.count("T165") >= 5 and all(len(v[2]) == 7 for v in published.values() if v[0] == "T165")
    assert reasons.count("T160") > 50 and "E140" in reasons
    assert gated["rules"].get("SENR-EXIT-REASON", {}).get("count") == 1


def pd_read(eng: sa.Engine, sql: str) -> list[tuple]:
    with eng.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]
