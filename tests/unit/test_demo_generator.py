"""The demo district generator on real SQLite files: determinism, counts, structural
invariants, and (through the real SPRG builder) that clean data passes every rule
of docs/rules.md's table while each planted record fires exactly its one rule.

The rule checks below are this test's own reading of that table, written independently of the quality
gate.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.demo.cli import main as cli_main
from calpads.demo.generator import generate_district
from calpads.demo.planting import KINDS, SENR_KINDS
from calpads.extracts.sprg import extract_sprg
from calpads.layouts import code_set, load_layout
from calpads.run_scope import RunScope
from tests.conftest import sqlite_frame

YEAR = "2025-2026"
TODAY = date(2026, 6, 30)
SKIP_FIELD_CODE_SETS = {"service_code"}   # covered by SPRG-SERVICE-122 (brief)


def _engine(path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{path}")


def _dump(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}  # noqa: S608
    finally:
        con.close()


def rule_failures(df: pd.DataFrame, today: date = TODAY) -> pd.DataFrame:
    """(local_record_id, rule_id) for every rule a record breaks."""
    layout = load_layout("SPRG")
    first, last = "20250701", "20260630"
    out: list[tuple[str, str]] = []

    def fail(mask: pd.Series, rule: str) -> None:
        out.extend((rid, rule) for rid in df.loc[mask.fillna(False).astype(bool), "local_record_id"])

    def pop(col: str) -> pd.Series:
        return df[col].notna()

    for f in layout.fields:
        col, fid = df[f.column], f.number
        if f.required and f.column != "transaction_type":
            fail(col.isna(), f"SPRG.{fid}.required")
        fail(col.notna() & (col.astype(str).str.len() > f.max_length), f"SPRG.{fid}.length")
        if f.code_set and f.column not in SKIP_FIELD_CODE_SETS and f.column != "transaction_type":
            fail(col.notna() & ~col.isin(code_set(f.code_set)), f"SPRG.{fid}.code_set")
        pattern = {"date": r"\d{8}", "cds_code": r"\d{7}", "ssid": r"\d{10}", "academic_year": r"\d{4}-\d{4}"}.get(
            f.type)
        if pattern:
            fail(col.notna() & ~col.astype(str).str.fullmatch(pattern), f"SPRG.{fid}.format")
        if f.fixed:
            fail(col != f.fixed, f"SPRG.{fid}.fixed")
    code, memb = df["program_code"], df["membership_code"]
    start, end, birth = df["membership_start_date"], df["membership_end_date"], df["birth_date"]
    fail((df["ctx_preferred_gender"] == "X") & ~df["ctx_legal_gender"].isin(["M", "F"]), "SPRG-GENDER-X-LEGAL")
    fail(((memb == "1") & ~code.isin(["101", "127", "144", "175", "181", "182", "135"]))
         | ~memb.isin(["1", "3"]), "SPRG-MEMBERSHIP-CODE")
    fail(start < birth, "SPRG-START-AFTER-BIRTH")
    fail(start > (today + timedelta(days=183)).strftime("%Y%m%d"), "SPRG-START-NOT-FUTURE")
    fail(pop("membership_end_date") & (end < start), "SPRG-END-AFTER-START")
    exit_ = df["ctx_enrollment_exit_date"]
    fail(pop("membership_end_date") & exit_.notna() & (end > exit_), "SPRG-END-BEFORE-EXIT")
    fail(pop("membership_end_date") & (end <= birth), "SPRG-END-AFTER-BIRTH")
    fail(pop("membership_end_date") & ((end < first) | (end > last)), "SPRG-END-IN-YEAR")
    t1 = code == "122"
    fail(t1 & (~df["service_code"].isin([f"{i:02d}" for i in range(5, 14)])
               | (df["service_academic_year"] != df["academic_year_id"])), "SPRG-SERVICE-122")
    fail(~t1 & (pop("service_code") | pop("service_academic_year")), "SPRG-SERVICE-ONLY-122")
    fail((code == "113") & ~pop("cpa_id"), "SPRG-CPA-113")
    fail(pop("cpa_id") & (code != "113"), "SPRG-CPA-ONLY-113")
    fail((code == "135") & ~df["migrant_id"].fillna("").str.startswith("06"), "SPRG-MIGRANT-135")
    fail(pop("migrant_id") & (code != "135"), "SPRG-MIGRANT-ONLY-135")
    fail((pop("primary_disability_code") | pop("dsea")) & (code != "144"), "SPRG-SPED-ONLY-144")
    homeless = pop("homeless_dwelling_type") | pop("unaccompanied_youth") | pop("runaway_youth")
    fail(homeless & (code != "191"), "SPRG-HOMELESS-ONLY-191")
    fail((memb == "3") & (df["ctx_enrolled_at_school"] == "Y") & (df["ctx_enrollment_covers_range"] != "Y"),
         "SPRG-ENROLLED-OVER-RANGE")
    fail(df["ctx_enrolled_at_school"] != "Y", "SPRG-SCHOOL-OF-SERVICE")
    return pd.DataFrame(out, columns=["local_record_id", "rule_id"])


def _scope(submission: str) -> RunScope:
    return RunScope.from_params("SPRG", {"academic_year": YEAR, "submission": submission}, TODAY)


def _truth_ids(path: Path) -> pd.DataFrame:
    t = sqlite_frame(path, "SELECT STUDENTID, PROGRAM_ID, SERVICECODE, KIND, RULE_ID FROM DEMO_PLANTED_VIOLATIONS")
    t["local_record_id"] = (t["STUDENTID"].astype(str) + "." + t["PROGRAM_ID"].astype(str)
                            + t["SERVICECODE"].map(lambda s: f".{s}" if isinstance(s, str) else ""))
    return t


@pytest.fixture(scope="module")
def dirty_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "dirty.db"
    generate_district(_engine(path), students=1500, seed=7, dirty=0.02, log=lambda _m: None)
    return path


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "clean.db"
    generate_district(_engine(path), students=1500, seed=11, log=lambda _m: None)
    return path


# --- determinism ----------------------------------------------------------------------------------------

def test_same_seed_gives_identical_tables_and_another_seed_does_not(tmp_path):
    paths = [tmp_path / f"{name}.db" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (5, 5, 6), strict=True):
        generate_district(_engine(path), students=400, seed=seed, dirty=0.05, log=lambda _m: None)
    a, b, c = (_dump(p) for p in paths)
    assert a == b
    assert a["STUDENTS"] != c["STUDENTS"]
    assert len(a["S_CA_STU_CALPADSPROGRAMS_C"]) > 100 and len(a["ATTENDANCE"]) > 1000


def test_attendance_and_afterschool_switches_do_not_change_other_tables(tmp_path):
    on, off = tmp_path / "on.db", tmp_path / "off.db"
    generate_district(_engine(on), students=300, seed=3, dirty=0.05, afterschool_dir=tmp_path / "as",
                      log=lambda _m: None)
    generate_district(_engine(off), students=300, seed=3, dirty=0.05, attendance=False, log=lambda _m: None)
    a, b = _dump(on), _dump(off)
    assert b["ATTENDANCE"] == [] and len(a["ATTENDANCE"]) > 0
    assert {t: v for t, v in a.items() if t != "ATTENDANCE"} == {t: v for t, v in b.items() if t != "ATTENDANCE"}


# --- counts and realism ---------------------------------------------------------------------------------

def test_district_shape(clean_db):
    schools = sqlite_frame(clean_db, "SELECT * FROM SCHOOLS")
    assert len(schools) == 10 and schools["STATE_EXCLUDEFROMREPORTING"].sum() == 1   # 5 E + 2 M + 2 H + 1
    assert schools["ALTERNATE_SCHOOL_NUMBER"].str.fullmatch(r"\d{7}").all()
    assert schools["ALTERNATE_SCHOOL_NUMBER"].is_unique and schools["SUBDISTRICT"].nunique() >= 2
    prefs = sqlite_frame(clean_db, "SELECT VALUE FROM PREFS WHERE NAME = 'districtnumber' AND SCHOOLID = 0")
    assert len(prefs) == 1 and re.fullmatch(r"\d{7}", prefs["VALUE"][0])
    terms = sqlite_frame(clean_db, "SELECT * FROM TERMS WHERE ISYEARREC = 1")
    assert sorted(terms["SCHOOLID"]) == sorted(schools["SCHOOL_NUMBER"]) and set(terms["YEARID"]) == {35}
    cal = sqlite_frame(clean_db, "SELECT * FROM CALENDAR_DAY")
    per_school = cal.groupby("SCHOOLID").agg(days=("DATE_VALUE", "size"), first=("DATE_VALUE", "min"),
                                             last=("DATE_VALUE", "max"), insession=("INSESSION", "sum"))
    assert (per_school["days"] == 365).all() and (per_school["insession"] == 180).all()
    assert (per_school["first"] == "2025-07-01").all() and (per_school["last"] == "2026-06-30").all()
    days = cal[cal["INSESSION"] == 1]
    dates = pd.to_datetime(days["DATE_VALUE"])
    assert (dates.dt.dayofweek < 5).all() and dates.min() >= pd.Timestamp("2025-08-01")
    for holiday in ("2025-09-01", "2025-11-11", "2025-11-26", "2025-12-25", "2026-01-01", "2026-01-19",
                    "2026-02-16", "2026-04-08", "2026-05-25"):
        assert holiday not in set(days["DATE_VALUE"]), holiday
    terms_first = dict(zip(terms["SCHOOLID"], terms["FIRSTDAY"], strict=True))
    first_in_session = days.groupby("SCHOOLID")["DATE_VALUE"].min()
    assert all(terms_first[s] == d for s, d in first_in_session.items())


def test_student_population(clean_db):
    st = sqlite_frame(clean_db, "SELECT * FROM STUDENTS")
    n = len(st)
    assert n == 1500 and st["ID"].is_unique and st["DCID"].is_unique and st["STUDENT_NUMBER"].is_unique
    assert set(st["GRADE_LEVEL"]) == set(range(-1, 13))
    ssid = st["STATE_STUDENTNUMBER"]
    assert 0.005 < ssid.isna().mean() < 0.05
    assert ssid.dropna().str.fullmatch(r"\d{10}").all() and ssid.dropna().is_unique
    assert set(st["GENDER"]) == {"M", "F", "X"} and 0 < (st["GENDER"] == "X").sum() < 0.05 * n
    assert set(st["ENROLL_STATUS"]) == {-1, 0, 2, 3}
    assert 0 < st["STATE_EXCLUDEFROMREPORTING"].sum() < 0.03 * n
    # Birth dates fit the grade: age on Sep 1 is grade + 5 (TK: 4), one year older when held back.
    age = (pd.Timestamp("2025-09-01") - pd.to_datetime(st["DOB"])).dt.days // 365.25
    assert ((age - st["GRADE_LEVEL"] - 5).isin([0, 1])).all()
    x = sqlite_frame(clean_db, "SELECT s.GENDER, x.* FROM STUDENTS s JOIN S_CA_STU_X x ON x.STUDENTSDCID = s.DCID")
    assert x.loc[x["GENDER"] == "X", "LEGALGENDER"].isin(["M", "F"]).all()
    assert (st["GENDER"] == "X").sum() == (x["GENDER"] == "X").sum()
    assert x["LEGALFIRSTNAME"].notna().sum() > 10 and x["LEGALLASTNAME"].notna().sum() > 10
    assert x["LEGALFIRSTNAME"].dropna().str.len().max() <= 30


def test_program_mix(clean_db):
    progs = sqlite_frame(clean_db, "SELECT p.*, s.GRADE_LEVEL FROM S_CA_STU_CALPADSPROGRAMS_C p "
                             "JOIN STUDENTS s ON s.DCID = p.STUDENTSDCID")
    counts = progs["PROGRAMCODE"].value_counts()
    for code in ("101", "108", "113", "122", "127", "135", "144", "162", "174", "180", "181", "182", "185", "190",
                 "191", "192"):
        assert counts.get(code, 0) >= 1, code
    assert 0.3 < counts["181"] / 1500 < 0.6
    assert set(progs.loc[progs["PROGRAMCODE"] == "185", "GRADE_LEVEL"]) == {-1}
    cpa = progs[progs["PROGRAMCODE"] == "113"]
    assert cpa["PARTNERSHIPACADEMYID"].str.fullmatch(r"\d{5}").all() and (cpa["GRADE_LEVEL"] >= 10).all()
    assert progs.loc[progs["PROGRAMCODE"] == "135", "MIGRANTSTUDENTID"].str.fullmatch(r"06\d{9}").all()
    sped = progs[progs["PROGRAMCODE"] == "144"]
    assert sped["PRMARYDISABILITYCODE"].notna().all()
    assert sped["DISTSPEDACCOUNTABILITY"].isna().any() and sped["DISTSPEDACCOUNTABILITY"].notna().any()
    assert sped["SPEDEXITCODE"].isna().any() and sped["SPEDEXITCODE"].notna().any()
    homeless = progs[progs["PROGRAMCODE"] == "191"]
    assert set(homeless["DWELLINGTYPE"]) <= {"100", "110", "120", "130"} and homeless["DWELLINGTYPE"].nunique() >= 2
    assert set(homeless["UNACCOMPANIEDYOUTH"]) | set(homeless["RUNAWAYYOUTH"]) <= {"Y", "N"}
    others = progs[progs["PROGRAMCODE"] != "191"]
    assert others[["DWELLINGTYPE", "UNACCOMPANIEDYOUTH", "RUNAWAYYOUTH"]].isna().all().all()
    assert progs["PROGRAMENDDATE"].notna().sum() > 20


# --- structural invariants ------------------------------------------------------------------------------

def _enrollments(path: Path) -> pd.DataFrame:
    return sqlite_frame(path, """
        SELECT ID AS STUDENTID, DCID, SCHOOLID, ENTRYDATE, EXITDATE, ENROLL_STATUS FROM STUDENTS
        WHERE ENROLL_STATUS <> -1
        UNION ALL
        SELECT r.STUDENTID, s.DCID, r.SCHOOLID, r.ENTRYDATE, r.EXITDATE, 0 FROM REENROLLMENTS r
        JOIN STUDENTS s ON s.ID = r.STUDENTID""")


def _last_days(path: Path, enr: pd.DataFrame) -> pd.Series:
    """Last in-session day before the exclusive EXITDATE (the contract's enrollment last day)."""
    cal = sqlite_frame(path, "SELECT SCHOOLID, DATE_VALUE FROM CALENDAR_DAY WHERE INSESSION = 1")
    days = cal.groupby("SCHOOLID")["DATE_VALUE"].apply(sorted).to_dict()
    out = []
    for school, exit_ in zip(enr["SCHOOLID"], enr["EXITDATE"], strict=True):
        if not isinstance(exit_, str):
            out.append("9999-12-31")
            continue
        out.append(max(d for d in days[school] if d < exit_))
    return pd.Series(out, index=enr.index)


@pytest.mark.parametrize("db", ["clean_db", "dirty_db"])
def test_enrollments_are_consistent(db, request):
    path = request.getfixturevalue(db)
    enr = _enrollments(path)
    closed = enr[enr["EXITDATE"].notna()]
    assert (closed["EXITDATE"] > closed["ENTRYDATE"]).all()
    assert set(enr.loc[enr["EXITDATE"].notna(), "ENROLL_STATUS"]) <= {0, 2, 3}
    assert (enr.loc[enr["ENROLL_STATUS"].isin([2, 3]), "EXITDATE"].notna()).all()
    ordered = enr.sort_values(["STUDENTID", "ENTRYDATE"])
    prev_exit = ordered.groupby("STUDENTID")["EXITDATE"].shift()
    following = prev_exit.notna() | ordered.duplicated("STUDENTID")
    assert (ordered.loc[following, "ENTRYDATE"] >= prev_exit[following]).all()       # no overlaps
    re_students = sqlite_frame(path, "SELECT STUDENTID FROM REENROLLMENTS")["STUDENTID"]
    assert len(re_students) > 10
    transfers = ordered[ordered["STUDENTID"].isin(re_students)]
    assert (transfers.groupby("STUDENTID")["SCHOOLID"].nunique() == 2).all()


def _enrollment_codes(path: Path) -> pd.DataFrame:
    return sqlite_frame(path, """
        SELECT s.ID AS STUDENTID, s.SCHOOLID, s.ENTRYDATE, s.EXITDATE, s.GRADE_LEVEL, s.ENROLL_STATUS, 'S' AS SRC,
               s.ENROLLMENTSTATUS, s.EXITCODE, s.COMPLETIONSTATUS, s.RECEIVER_SCHOOL, s.UCCSU_REQS_MET,
               s.SCHOOLID AS NOW
        FROM STUDENTS s
        UNION ALL
        SELECT r.STUDENTID, r.SCHOOLID, r.ENTRYDATE, r.EXITDATE, r.GRADE_LEVEL, 0, 'R', r.ENROLLMENTSTATUS, r.EXITCODE,
               r.COMPLETIONSTATUS, r.RECEIVER_SCHOOL, r.UCCSU_REQS_MET, s.SCHOOLID
        FROM REENROLLMENTS r JOIN STUDENTS s ON s.ID = r.STUDENTID""")


def test_exits_carry_their_calpads_codes(clean_db):
    enr = _enrollment_codes(clean_db)
    assert (enr["ENROLLMENTSTATUS"] == "10").all()
    closed, open_ = enr[enr["EXITDATE"].notna()], enr[enr["EXITDATE"].isna()]
    assert closed["EXITCODE"].notna().all() and open_[["EXITCODE", "COMPLETIONSTATUS", "RECEIVER_SCHOOL",
                                                        "UCCSU_REQS_MET"]].isna().all().all()
    assert {"T160", "T165", "E230"} <= set(closed["EXITCODE"]) <= set(code_set("exit_reason"))
    grads = closed[closed["EXITCODE"] == "E230"]
    assert len(grads) >= 1 and (grads["GRADE_LEVEL"] == 12).all() and (grads["ENROLL_STATUS"] == 3).all()
    assert (grads["COMPLETIONSTATUS"] == "100").all() and grads["UCCSU_REQS_MET"].isin(["Y", "N"]).all()
    others = closed[closed["EXITCODE"] != "E230"]
    assert others[["COMPLETIONSTATUS", "UCCSU_REQS_MET"]].isna().all().all()
    assert (closed.loc[closed["EXITCODE"] == "E140", "GRADE_LEVEL"] >= 7).all()
    t165 = closed[closed["EXITCODE"] == "T165"]
    assert len(t165) and t165["RECEIVER_SCHOOL"].str.fullmatch(r"\d{7}").all()
    assert closed.loc[closed["EXITCODE"] != "T165", "RECEIVER_SCHOOL"].isna().all()
    # a transfer inside the district names the school the student moved to; one who left, a school outside it
    cds = dict(zip(*sqlite_frame(clean_db, "SELECT SCHOOL_NUMBER, ALTERNATE_SCHOOL_NUMBER FROM SCHOOLS").values.T,
                   strict=True))
    moved = t165[t165["SRC"] == "R"]
    assert len(moved) and (moved["RECEIVER_SCHOOL"] == moved["NOW"].map(cds)).all()
    assert not t165.loc[t165["SRC"] == "S", "RECEIVER_SCHOOL"].isin(list(cds.values())).any()
    assert sqlite_frame(clean_db, "SELECT * FROM DEMO_PLANTED_SENR").empty


def test_planted_senr_exit_errors_break_their_field(dirty_db):
    truth = sqlite_frame(dirty_db, "SELECT * FROM DEMO_PLANTED_SENR")
    assert set(truth["KIND"]) == set(SENR_KINDS)
    assert (truth["RULE_ID"] == truth["KIND"].map(lambda k: SENR_KINDS[k].rule_id)).all()
    enr = _enrollment_codes(dirty_db).merge(truth, on=["STUDENTID", "SCHOOLID", "ENTRYDATE"])
    assert len(enr) == len(truth) and enr["EXITDATE"].notna().all()
    by_kind = {k: g for k, g in enr.groupby("KIND")}
    assert by_kind["exit_no_reason"]["EXITCODE"].isna().all()
    assert (by_kind["e230_no_completion"]["EXITCODE"] == "E230").all()
    assert by_kind["e230_no_completion"]["COMPLETIONSTATUS"].isna().all()
    assert (by_kind["t165_no_receiver"]["EXITCODE"] == "T165").all()
    assert by_kind["t165_no_receiver"]["RECEIVER_SCHOOL"].isna().all()


def _programs_with_truth(path: Path) -> pd.DataFrame:
    progs = sqlite_frame(path, "SELECT p.*, s.ID AS STUDENTID, s.DOB FROM S_CA_STU_CALPADSPROGRAMS_C p "
                         "JOIN STUDENTS s ON s.DCID = p.STUDENTSDCID")
    planted = sqlite_frame(path, "SELECT PROGRAM_ID, KIND FROM DEMO_PLANTED_VIOLATIONS")
    return progs.merge(planted.drop_duplicates("PROGRAM_ID"), left_on="ID", right_on="PROGRAM_ID", how="left")


@pytest.mark.parametrize("db", ["clean_db", "dirty_db"])
def test_clean_program_rows_sit_inside_enrollments(db, request):
    path = request.getfixturevalue(db)
    progs = _programs_with_truth(path)
    schools = set(sqlite_frame(path, "SELECT SCHOOL_NUMBER FROM SCHOOLS")["SCHOOL_NUMBER"])
    assert progs["SCHOOLID"].isin(schools).all()
    clean = progs[progs["KIND"].isna()].reset_index(drop=True)
    if db == "clean_db":
        assert len(clean) == len(progs)
    one_ok = {"101", "127", "144", "175", "181", "182", "135"}
    assert ((clean["PROGRAMMEMBERSHIPCODE"] == "3") | clean["PROGRAMCODE"].isin(one_ok)).all()
    assert (clean["PROGRAMSTARTDATE"] > clean["DOB"]).all()
    ended = clean[clean["PROGRAMENDDATE"].notna()]
    assert (ended["PROGRAMENDDATE"] >= ended["PROGRAMSTARTDATE"]).all()
    assert ended["PROGRAMENDDATE"].between("2025-07-01", "2026-06-30").all()
    enr = _enrollments(path)
    enr["LAST"] = _last_days(path, enr)
    joined = clean.reset_index().merge(enr, left_on=["STUDENTSDCID", "SCHOOLID"], right_on=["DCID", "SCHOOLID"])
    assert set(joined["index"]) == set(range(len(clean)))           # every program at a school of enrollment
    end = joined["PROGRAMENDDATE"].fillna("9999-12-31")
    inside = (joined["PROGRAMSTARTDATE"] >= joined["ENTRYDATE"]) & (joined["PROGRAMSTARTDATE"] <= joined["LAST"])
    eligibility_or_inside = (joined["PROGRAMMEMBERSHIPCODE"] == "1") | inside
    assert joined.groupby("index").apply(lambda g: eligibility_or_inside[g.index].any()).all()
    ends_inside = joined["PROGRAMENDDATE"].isna() | (end <= joined["LAST"])
    assert joined.groupby("index").apply(lambda g: ends_inside[g.index].any()).all()


@pytest.mark.parametrize("db", ["clean_db", "dirty_db"])
def test_title_one_programs_have_services_in_the_year(db, request):
    path = request.getfixturevalue(db)
    progs = _programs_with_truth(path)
    t1 = progs[progs["PROGRAMCODE"] == "122"]
    assert len(t1) > 10
    svc = sqlite_frame(path, "SELECT * FROM S_CA_CALPADS_STUDENTSERVICES_C")
    m = t1.merge(svc, on=["STUDENTSDCID", "SCHOOLID"])
    assert set(m["ID_x"]) == set(t1["ID"])
    in_year = m[m["SERVICEDATE"].between("2025-07-01", "2026-06-30")]
    assert set(in_year["ID_x"]) == set(t1["ID"])
    clean = m[m["KIND"].isna()]
    assert clean["SERVICECODE"].isin([f"{i:02d}" for i in range(5, 14)]).all()
    assert (clean["SERVICEDATE"] >= clean["PROGRAMSTARTDATE"]).all()
    cal = sqlite_frame(path, "SELECT SCHOOLID, DATE_VALUE AS SERVICEDATE, INSESSION FROM CALENDAR_DAY")
    assert (svc.merge(cal, on=["SCHOOLID", "SERVICEDATE"])["INSESSION"] == 1).all()


def test_attendance_codes_and_absence_rate(clean_db):
    codes = sqlite_frame(clean_db, "SELECT * FROM ATTENDANCE_CODE")
    assert set(codes["CALPADS_CATEGORY"]) == {"EXCUSED", "UNEXCUSED", "OUT_OF_SCHOOL_SUSPENSION",
                                              "IN_SCHOOL_SUSPENSION", "INDEPENDENT_STUDY", "PRESENT"}
    assert codes.groupby("SCHOOLID").size().nunique() == 1
    att = sqlite_frame(clean_db, "SELECT a.*, c.PRESENCE_STATUS_CD, c.SCHOOLID AS CODE_SCHOOL, d.INSESSION "
                           "FROM ATTENDANCE a JOIN ATTENDANCE_CODE c ON c.ID = a.ATTENDANCE_CODEID "
                           "JOIN CALENDAR_DAY d ON d.SCHOOLID = a.SCHOOLID AND d.DATE_VALUE = a.ATT_DATE")
    assert (att["CODE_SCHOOL"] == att["SCHOOLID"]).all() and (att["INSESSION"] == 1).all()
    assert not att.duplicated(["STUDENTID", "ATT_DATE"]).any()
    enr = _enrollments(clean_db)
    student_days = 0
    cal = sqlite_frame(clean_db, "SELECT SCHOOLID, DATE_VALUE FROM CALENDAR_DAY WHERE INSESSION = 1")
    for school, group in enr.groupby("SCHOOLID"):
        days = cal.loc[cal["SCHOOLID"] == school, "DATE_VALUE"].to_numpy()
        for entry, exit_ in zip(group["ENTRYDATE"], group["EXITDATE"].fillna("9999"), strict=True):
            student_days += int(((days >= entry) & (days < exit_)).sum())
    absent_share = (att["PRESENCE_STATUS_CD"] == "Absent").sum() / student_days
    assert 0.03 < absent_share < 0.08


# --- through the SPRG builder: clean passes, each planted record fires exactly its rule -----------------

@pytest.mark.parametrize("submission", ["eoy2", "fall1", "all"])
def test_clean_district_passes_every_rule(clean_db, submission):
    codes = ["101", "108", "113", "122", "127", "135", "144", "162", "174", "180", "181", "182", "185", "190",
             "191", "192"]
    params = {"academic_year": YEAR, "submission": submission}
    if submission == "all":
        params.update(submission="custom", programs=codes)
    records = extract_sprg(_engine(clean_db), RunScope.from_params("SPRG", params, TODAY))
    assert len(records) > 200
    failures = rule_failures(records)
    assert failures.empty, failures.groupby("rule_id").size().to_dict()


def test_planted_violations_fire_exactly_their_rule(dirty_db):
    truth = _truth_ids(dirty_db)
    assert set(truth["KIND"]) == set(KINDS)
    assert (truth["RULE_ID"] == truth["KIND"].map(lambda k: KINDS[k].rule_id)).all()
    seen: set[str] = set()
    for submission in ("eoy2", "fall1"):
        records = extract_sprg(_engine(dirty_db), _scope(submission))
        failures = rule_failures(records)
        expected = truth[truth["local_record_id"].isin(records["local_record_id"])]
        got = sorted(zip(failures["local_record_id"], failures["rule_id"], strict=True))
        assert got == sorted(zip(expected["local_record_id"], expected["RULE_ID"], strict=True))
        seen |= set(expected["KIND"])
    assert seen == set(KINDS)                       # every kind survives selection in EOY 2 or Fall 1
    assert len(truth) == len(sqlite_frame(dirty_db, "SELECT DISTINCT STUDENTID FROM DEMO_PLANTED_VIOLATIONS"))


# --- CLI ------------------------------------------------------------------------------------------------

def test_cli_writes_summary_afterschool_exports_and_refuses_to_overwrite(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'sis.db'}"
    out_dir = tmp_path / "afterschool"
    args = ["--url", url, "--students", "300", "--dirty", "0.05", "--seed", "9", "--afterschool-dir", str(out_dir)]
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    import json

    summary = json.loads(captured.out)
    assert summary["students"] == 300 and sum(summary["planted"].values()) == len(KINDS)
    names = set(sqlite_frame(tmp_path / "sis.db", "SELECT FIRST_NAME FROM STUDENTS")["FIRST_NAME"])
    assert all(line.startswith("demo district:") for line in captured.err.splitlines())
    assert not any(name in captured.err for name in names)

    with (out_dir / "attendance.csv").open() as f:
        att = list(csv.DictReader(f))
    with (out_dir / "registrations.csv").open() as f:
        reg = list(csv.DictReader(f))
    assert list(att[0]) == ["student_number", "ssid", "school_code", "session_date", "minutes", "program"]
    assert list(reg[0]) == ["student_number", "ssid", "program", "registration_date"]
    assert {r["program"] for r in att} == {"ELO-P", "ASES", "21CCLC", "AR"}
    assert all(int(r["minutes"]) > 0 and re.fullmatch(r"\d{7}", r["school_code"]) for r in att)
    known = set(sqlite_frame(tmp_path / "sis.db", "SELECT STUDENT_NUMBER FROM STUDENTS")["STUDENT_NUMBER"])
    assert sum(r["student_number"] not in known for r in att) == 2
    assert any(date.fromisoformat(r["session_date"]).weekday() == 5 for r in att)
    assert {r["student_number"] for r in reg} <= known and len(reg) > 10

    assert cli_main(["--url", url, "--students", "50"]) == 2          # tables exist, no --replace
    assert cli_main(["--url", url, "--students", "50", "--replace", "--no-attendance"]) == 0
    assert len(sqlite_frame(tmp_path / "sis.db", "SELECT ID FROM STUDENTS")) == 50
