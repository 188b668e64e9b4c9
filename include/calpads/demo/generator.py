"""The demo district generator: a PowerSchool-shaped SIS database (the contract's
tables) filled with a made-up but realistic California district.

Deterministic for a seed: every random draw comes from a numpy Generator seeded
with (seed, chunk, purpose), so the same seed gives the same rows byte for byte,
and turning attendance or the afterschool export on or off does not change any
other table. Students are made in chunks of CHUNK with vectorised numpy and
loaded with executemany (SQLite) or COPY (PostgreSQL).

Enrollment model (PowerSchool's): the current or last enrollment is on
STUDENTS, an earlier one of the same year (mid-year transfer) in REENROLLMENTS;
EXITDATE is exclusive (the day after the last day, or the next school day).
Every program membership is tied to one enrollment: a participating (3)
membership starts on or after the entry and ends (own end date, or the
enrollment's last day) inside it; an eligibility (1) membership may start
earlier (July 1, or a prior year for GATE/migrant).

Every enrollment carries its CALPADS codes (ENROLLMENTSTATUS 10; see ``exit_codes``
for the exits): a mid-year transfer to another school of the district leaves with
T160 (or T165 with that school as the expected receiver), a student who leaves the
district with T160, T165 (receiver school outside the district) or, from grade 7,
E140, and a mid-year graduate with E230, completion status 100 and the UC/CSU
indicator. Open enrollments have no exit codes: the district is seen during the
year, before the year-end exits (E155/E156, E230 with 480/485 or 100) that the
district's end-of-year process writes. ``--dirty`` also plants a few SENR exit
errors (planting.SENR_KINDS), recorded in DEMO_PLANTED_SENR.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from calpads.demo import afterschool as afterschool_mod
from calpads.demo.calendar import iso
from calpads.demo.district import (
    ATTENDANCE_CODES,
    ELEMENTARY,
    HIGH,
    LEA_CODE,
    MIDDLE,
    District,
    attendance_code_id,
    district_rows,
    plan_district,
)
from calpads.demo.loader import PLANTED_SENR_TABLE, PLANTED_TABLE, BulkLoader, prepare_schema
from calpads.demo.names import FEMALE, LAST, LONG_FIRST, MALE
from calpads.demo.planting import (
    KINDS,
    SENR_KINDS,
    PlantContext,
    chunk_quota,
    kind_totals,
    planted_program,
    senr_kind_totals,
)
from calpads.run_scope import academic_year_bounds

CHUNK = 50_000
ATTENDANCE_DEFAULT_MAX_STUDENTS = 50_000
GRADES = np.arange(-1, 13)
GRADE_WEIGHTS = np.array([0.5] + [1.0] * 13) / 13.5
FULL, LATE, EXIT, TRANSFER, GRAD, PREREG = range(6)
LAST_IDX = 179                         # index of the last of the 180 session days
MIN_PER_CODE = 3
DISABILITIES = np.array(["290", "240", "280", "320", "260", "210", "310", "220", "250", "270"], dtype=object)
DISABILITY_P = np.array([0.36, 0.20, 0.15, 0.13, 0.05, 0.04, 0.03, 0.02, 0.01, 0.01])
SPED_EXIT_CODES = np.array(["72", "73", "74", "76"], dtype=object)
DWELLINGS = np.array(["100", "110", "120", "130"], dtype=object)
SERVICE_CODES = np.array(["09", "08", "12", "06", "07", "05", "10", "11", "13"], dtype=object)
SERVICE_P = np.array([0.34, 0.30, 0.10, 0.06, 0.05, 0.05, 0.04, 0.03, 0.03])

# The enrollment's CALPADS codes (SENR 1.23, 1.26-1.29) on STUDENTS and REENROLLMENTS.
CODE_COLS = ("ENROLLMENTSTATUS", "EXITCODE", "COMPLETIONSTATUS", "RECEIVER_SCHOOL", "UCCSU_REQS_MET")
STATUS, EXIT_CODE, COMPLETION, RECEIVER, UCCSU = range(len(CODE_COLS))   # columns of exit_codes' array
PRIMARY = "10"
STUDENT_COLS = ("ID", "DCID", "STUDENT_NUMBER", "STATE_STUDENTNUMBER", "FIRST_NAME", "LAST_NAME", "DOB", "GENDER",
                "SCHOOLID", "GRADE_LEVEL", "ENTRYDATE", "EXITDATE", "ENROLL_STATUS", "STATE_EXCLUDEFROMREPORTING",
                *CODE_COLS)
REENROLL_COLS = ("ID", "STUDENTID", "SCHOOLID", "GRADE_LEVEL", "ENTRYDATE", "EXITDATE", "STATE_EXCLUDEFROMREPORTING",
                 *CODE_COLS)
STU_X_COLS = ("STUDENTSDCID", "LEGALFIRSTNAME", "LEGALLASTNAME", "LEGALGENDER")
PROGRAM_COLS = ("ID", "STUDENTSDCID", "SCHOOLID", "PROGRAMCODE", "PROGRAMMEMBERSHIPCODE", "PROGRAMSTARTDATE",
                "PROGRAMENDDATE", "PARTNERSHIPACADEMYID", "MIGRANTSTUDENTID", "PRMARYDISABILITYCODE",
                "DISTSPEDACCOUNTABILITY", "DWELLINGTYPE", "UNACCOMPANIEDYOUTH", "RUNAWAYYOUTH", "SPEDEXITCODE")
SERVICE_COLS = ("ID", "STUDENTSDCID", "SCHOOLID", "SERVICECODE", "SERVICEDATE")
ATTENDANCE_COLS = ("ID", "STUDENTID", "SCHOOLID", "ATT_DATE", "ATTENDANCE_CODEID", "ATT_MODE_CODE")
PLANTED_COLS = ("ID", "STUDENTID", "PROGRAM_ID", "SERVICECODE", "KIND", "RULE_ID")
PLANTED_SENR_COLS = ("ID", "STUDENTID", "SCHOOLID", "ENTRYDATE", "KIND", "RULE_ID")
# Object (text) columns of the chunk's program frame; None = NULL.
PROGRAM_TEXT = ("cpa", "migrant", "disab", "dsea", "dwelling", "uy", "ry", "spedexit", "kind", "truth_service")


@dataclass
class DemoSummary:
    academic_year: str
    seed: int
    lea_code: str
    schools: int
    reportable_schools: int
    students: int
    enrollments: int                      # STUDENTS rows enrolled this year + REENROLLMENTS
    reenrollments: int
    programs: dict[str, int] = field(default_factory=dict)
    services: int = 0
    attendance_rows: int = 0
    planted: dict[str, int] = field(default_factory=dict)
    planted_senr: dict[str, int] = field(default_factory=dict)   # SENR exit errors (planting.SENR_KINDS)
    exits: dict[str, int] = field(default_factory=dict)          # enrollments per exit code
    afterschool_sessions: int = 0
    afterschool_registrations: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate_district(engine: sa.Engine, students: int = 2000, seed: int = 42, dirty: float = 0.0,
                      academic_year: str = "2025-2026", *, attendance: bool | None = None,
                      afterschool_dir: str | Path | None = None, replace: bool = False,
                      log: Callable[[str], None] = _log_stderr, program_rate_scale: float = 1.0,
                      lea_code: str = LEA_CODE) -> DemoSummary:
    """Create the SIS schema in `engine` and fill it; see the module docstring.

    attendance None = on for <= 50,000 students. replace drops existing SIS tables
    first (otherwise existing tables are an error). Logs counts and timings only.
    program_rate_scale (benchmarks only) multiplies every program's participation rate, for
    program-dense districts (30 gives ~3 end-of-year SPRG records per student); 1.0 leaves the
    output unchanged.
    lea_code: the Reporting LEA the SIS holds (PREFS districtnumber, the special-education DSEA); another code than
    the default 5699999 also gives the schools and students codes of their own (calpads.demo.district), so that
    demo LEAs generated into separate databases share no school code, local student id or SSID. The default
    LEA's rows are the same as ever.
    """
    if program_rate_scale <= 0:
        raise ValueError("program_rate_scale must be positive")
    if students < 1:
        raise ValueError("students must be at least 1")
    if not 0.0 <= dirty <= 0.5:
        raise ValueError("dirty must be a rate between 0 and 0.5")
    first_day, _ = academic_year_bounds(academic_year)
    if attendance is None:
        attendance = students <= ATTENDANCE_DEFAULT_MAX_STUDENTS
    t0 = time.perf_counter()
    district = plan_district(students, first_day.year, lea_code)
    prepare_schema(engine, replace)
    summary = DemoSummary(academic_year, seed, district.lea_code, len(district.schools), len(district.schools) - 1,
                          students, 0, 0)
    loader = BulkLoader(engine)
    export = afterschool_mod.Export(Path(afterschool_dir), district) if afterschool_dir else None
    try:
        for table, (cols, rows) in district_rows(district, academic_year).items():
            loader.insert(table, cols, rows)
        loader.commit()
        chunks = -(-students // CHUNK)
        totals = kind_totals(students, dirty)
        senr_totals = senr_kind_totals(students, dirty)
        counters = Counters()
        for c in range(chunks):
            n = min(CHUNK, students - c * CHUNK)
            tables = make_chunk(district, seed, c, c * CHUNK + 1, n, chunk_quota(totals, c, chunks), counters,
                                summary, attendance, export, program_rate_scale=program_rate_scale,
                                senr_quota=chunk_quota(senr_totals, c, chunks))
            for table, (cols, rows) in tables.items():
                loader.insert(table, cols, rows)
            loader.commit()
            log(f"demo district: {c * CHUNK + n:,}/{students:,} students loaded ({time.perf_counter() - t0:.1f} s)")
    finally:
        loader.close()
        if export:
            export.close()
    if export:
        summary.afterschool_sessions, summary.afterschool_registrations = export.sessions, export.registrations
    summary.programs = dict(sorted(summary.programs.items()))
    summary.planted = {k: summary.planted[k] for k in KINDS if k in summary.planted}
    summary.planted_senr = {k: summary.planted_senr[k] for k in SENR_KINDS if k in summary.planted_senr}
    summary.exits = dict(sorted(summary.exits.items()))
    summary.seconds = round(time.perf_counter() - t0, 2)
    log(f"demo district: done in {summary.seconds:.1f} s ({summary.enrollments:,} enrollments, "
        f"{sum(summary.programs.values()):,} program rows, {summary.services:,} services, "
        f"{summary.attendance_rows:,} attendance rows, {sum(summary.planted.values())} planted violations)")
    return summary


@dataclass
class Counters:
    reenrollment: int = 0
    program: int = 0
    service: int = 0
    attendance: int = 0
    planted: int = 0
    planted_senr: int = 0

    def take(self, name: str, n: int) -> np.ndarray:
        start = getattr(self, name)
        setattr(self, name, start + n)
        return np.arange(start + 1, start + n + 1, dtype=np.int64)


@dataclass
class Chunk:
    """One chunk's students (arrays of length n) and enrollments (segments, arrays of length m)."""

    ids: np.ndarray
    grade: np.ndarray
    school: np.ndarray
    dob: np.ndarray
    gender: np.ndarray
    first: np.ndarray
    last: np.ndarray
    ssid: np.ndarray
    kind: np.ndarray
    excluded: np.ndarray
    seg_stu: np.ndarray
    seg_school: np.ndarray
    seg_entry: np.ndarray
    seg_last: np.ndarray
    seg_closed: np.ndarray
    seg_no: np.ndarray
    seg_exit: np.ndarray          # EXITDATE (exclusive) day number, -1 when open

    @property
    def dcid(self) -> np.ndarray:
        return self.ids + 1_000_000


def _pick(rng: np.random.Generator, pool: tuple[str, ...] | list[str], n: int) -> np.ndarray:
    return np.array(pool, dtype=object)[rng.integers(0, len(pool), n)]


def make_students(d: District, rng: np.random.Generator, seed: int, id0: int, n: int) -> Chunk:
    ids = np.arange(id0, id0 + n, dtype=np.int64)
    grade = rng.choice(GRADES, size=n, p=GRADE_WEIGHTS)
    school = np.empty(n, dtype=np.int64)
    for level, lo, hi in ((ELEMENTARY, -1, 5), (MIDDLE, 6, 8), (HIGH, 9, 12)):
        m = (grade >= lo) & (grade <= hi)
        pool = d.by_level[level]
        school[m] = pool[rng.integers(0, len(pool), m.sum())]
    school[(grade >= 9) & (rng.random(n) < 0.012)] = d.excluded_school
    # Born in the year that puts the student in this grade (5 by Sep 1 for K); a few were held back a year.
    y = d.first_year
    base = np.array([(np.datetime64(f"{y - 6 - g:04d}-09-02") - np.datetime64("1970-01-01")).astype(int)
                     for g in GRADES], dtype=np.int64)
    dob = base[grade + 1] + rng.integers(0, 365, n) - 365 * (rng.random(n) < 0.02)
    gender = rng.choice(np.array(["M", "F", "X"], dtype=object), size=n, p=[0.49, 0.495, 0.015])
    female = np.where(gender == "X", rng.random(n) < 0.5, gender == "F")
    first = np.where(female, _pick(rng, FEMALE, n), _pick(rng, MALE, n))
    last = _pick(rng, LAST, n)
    kind = rng.choice(6, size=n, p=[0.845, 0.06, 0.045, 0.045, 0.0, 0.005])
    kind[(grade == 12) & (rng.random(n) < 0.05) & (kind == FULL)] = GRAD
    kind[(school == d.excluded_school) & (kind == TRANSFER)] = FULL
    no_ssid = rng.random(n) < np.where(kind == LATE, 0.10, np.where(kind == PREREG, 0.30, 0.012))
    offset = (seed * 7_919_317 + d.ssid_salt) % 9_000_000_000
    ssid_num = 1_000_000_000 + (ids * 1_000_003 + offset) % 9_000_000_000
    ssid = np.where(no_ssid, None, ssid_num.astype(str).astype(object))
    excluded = (rng.random(n) < 0.006).astype(np.int64)

    # Enrollment segments: the first (or only) enrollment of every student enrolled this year ...
    enrolled = kind != PREREG
    s0 = np.flatnonzero(enrolled)
    k0 = kind[s0]
    entry0 = np.zeros(len(s0), dtype=np.int64)
    last0 = np.full(len(s0), LAST_IDX, dtype=np.int64)
    late = k0 == LATE
    entry0[late] = rng.integers(3, 150, late.sum())
    ex = k0 == EXIT
    entry0[ex] = np.where(rng.random(ex.sum()) < 0.8, 0, rng.integers(3, 60, ex.sum()))
    last0[ex] = entry0[ex] + (rng.random(ex.sum()) * (176 - 10 - entry0[ex])).astype(np.int64) + 10
    gr = k0 == GRAD
    last0[gr] = d.semester_end[school[s0[gr]]]
    tr = k0 == TRANSFER
    last0[tr] = rng.integers(15, 150, tr.sum())
    closed0 = ex | gr | tr
    # ... and the second enrollment of a mid-year transfer, at another school of the same level.
    s1 = s0[tr]
    school1 = np.empty(len(s1), dtype=np.int64)
    for pool in d.by_level.values():
        m = np.isin(school[s1], pool)
        pos = np.searchsorted(pool, school[s1][m])
        school1[m] = pool[(pos + 1 + rng.integers(0, len(pool) - 1, m.sum())) % len(pool)]
    entry1 = last0[tr] + 1 + rng.integers(0, 5, len(s1))
    seg_stu = np.concatenate([s0, s1])
    seg_school = np.concatenate([school[s0], school1])
    seg_entry = np.concatenate([entry0, entry1])
    seg_last = np.concatenate([last0, np.full(len(s1), LAST_IDX, dtype=np.int64)])
    seg_closed = np.concatenate([closed0, np.zeros(len(s1), dtype=bool)])
    seg_no = np.concatenate([np.zeros(len(s0), dtype=np.int64), np.ones(len(s1), dtype=np.int64)])
    order = np.lexsort((seg_no, seg_stu))
    seg_stu, seg_school, seg_entry, seg_last, seg_closed, seg_no = (
        a[order] for a in (seg_stu, seg_school, seg_entry, seg_last, seg_closed, seg_no))
    # EXITDATE: the day after the last day, or (half the time) the next school day.
    last_day = d.sess[seg_school, seg_last]
    next_school_day = d.sess[seg_school, np.minimum(seg_last + 1, LAST_IDX)]
    use_next = (rng.random(len(seg_stu)) < 0.5) & (seg_last < LAST_IDX)
    seg_exit = np.where(seg_closed, np.where(use_next, next_school_day, last_day + 1), -1)
    return Chunk(ids, grade, school, dob, gender, first, last, ssid, kind, excluded,
                 seg_stu, seg_school, seg_entry, seg_last, seg_closed, seg_no, seg_exit)


def make_chunk(d: District, seed: int, chunk_no: int, id0: int, n: int, quota: dict[str, int], counters: Counters,
               summary: DemoSummary, attendance: bool, export: afterschool_mod.Export | None,
               program_rate_scale: float = 1.0, senr_quota: dict[str, int] | None = None,
               ) -> dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    rng = np.random.default_rng([seed, chunk_no, 1])
    ch = make_students(d, rng, seed, id0, n)
    stu_x = legal_overrides(ch, rng)
    planted = choose_planted(d, ch, stu_x, quota, np.random.default_rng([seed, chunk_no, 4]))
    # Own random streams, so that the codes and their planted errors change no other table.
    codes = exit_codes(d, ch, np.random.default_rng([seed, chunk_no, 6]))
    senr_planted = plant_senr(d, ch, codes, senr_quota or {}, set(planted),
                              np.random.default_rng([seed, chunk_no, 7]))
    progs = clean_programs(d, ch, rng, exclude=np.isin(np.arange(n), list(planted)), rate_scale=program_rate_scale)
    if planted:
        progs = pd.concat([progs, planted_programs(d, ch, planted, stu_x, np.random.default_rng(
            [seed, chunk_no, 5]))], ignore_index=True)
    progs = progs.sort_values(["stu", "start", "code", "school"], kind="stable").reset_index(drop=True)
    progs["id"] = counters.take("program", len(progs))
    services = service_rows(d, ch, progs, rng, counters)

    out: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {}
    out["STUDENTS"] = (STUDENT_COLS, student_rows(d, ch, codes))
    re = np.flatnonzero(ch.seg_no == 0)
    re = re[ch.kind[ch.seg_stu[re]] == TRANSFER]
    re_ids = counters.take("reenrollment", len(re))
    sn = d.school_numbers
    out["REENROLLMENTS"] = (REENROLL_COLS, list(zip(
        re_ids.tolist(), ch.ids[ch.seg_stu[re]].tolist(), sn[ch.seg_school[re]].tolist(),
        ch.grade[ch.seg_stu[re]].tolist(), iso(d.sess[ch.seg_school[re], ch.seg_entry[re]]).tolist(),
        iso(ch.seg_exit[re]).tolist(), [0] * len(re), *(codes[:, k][re].tolist() for k in range(len(CODE_COLS))),
        strict=True)))
    out["S_CA_STU_X"] = (STU_X_COLS, [(int(ch.dcid[i]), *v) for i, v in sorted(stu_x.items())])
    out["S_CA_STU_CALPADSPROGRAMS_C"] = (PROGRAM_COLS, program_rows(d, ch, progs))
    out["S_CA_CALPADS_STUDENTSERVICES_C"] = (SERVICE_COLS, services)

    absences = None
    if attendance or export:
        att_rows, absences = attendance_rows(d, ch, np.random.default_rng([seed, chunk_no, 2]), counters,
                                             write=attendance)
        if attendance:
            out["ATTENDANCE"] = (ATTENDANCE_COLS, att_rows)
            summary.attendance_rows += len(att_rows)
    if export:
        export.add_chunk(ch, absences, np.random.default_rng([seed, chunk_no, 3]), first_chunk=chunk_no == 0)

    truth = progs[progs["kind"].notna()]
    truth_ids = counters.take("planted", len(truth))
    out[PLANTED_TABLE] = (PLANTED_COLS, list(zip(
        truth_ids.tolist(), ch.ids[truth["stu"].to_numpy()].tolist(), truth["id"].tolist(),
        texts(truth["truth_service"]), texts(truth["kind"]), [KINDS[k].rule_id for k in truth["kind"]],
        strict=True)))
    for k in truth["kind"]:
        summary.planted[k] = summary.planted.get(k, 0) + 1
    segs = np.array(sorted(senr_planted), dtype=np.int64)
    senr_ids = counters.take("planted_senr", len(segs))
    entries = iso(d.sess[ch.seg_school[segs], ch.seg_entry[segs]])
    out[PLANTED_SENR_TABLE] = (PLANTED_SENR_COLS, [
        (int(i), int(ch.ids[ch.seg_stu[s]]), int(sn[ch.seg_school[s]]), str(e), senr_planted[int(s)],
         SENR_KINDS[senr_planted[int(s)]].rule_id) for i, s, e in zip(senr_ids.tolist(), segs, entries, strict=True)])
    for k in senr_planted.values():
        summary.planted_senr[k] = summary.planted_senr.get(k, 0) + 1
    for code in codes[:, 1]:
        if code is not None:
            summary.exits[code] = summary.exits.get(code, 0) + 1
    for code, count in progs["code"].value_counts().items():
        summary.programs[str(code)] = summary.programs.get(str(code), 0) + int(count)
    summary.services += len(services)
    summary.enrollments += int((ch.kind != PREREG).sum()) + len(re)
    summary.reenrollments += len(re)
    return out


def legal_overrides(ch: Chunk, rng: np.random.Generator) -> dict[int, tuple[str | None, str | None, str | None]]:
    """S_CA_STU_X rows by chunk index: every X student has a legal gender M/F; ~3% have legal names."""
    n = len(ch.ids)
    names = rng.random(n) < 0.03
    x = ch.gender == "X"
    legal_gender = rng.choice(np.array(["M", "F"], dtype=object), size=n)
    which = rng.random(n)
    other_first = np.where(rng.random(n) < 0.5, _pick(rng, FEMALE, n), _pick(rng, MALE, n))
    other_last = _pick(rng, LAST, n)
    out: dict[int, tuple[str | None, str | None, str | None]] = {}
    for i in np.flatnonzero(names | x).tolist():
        first = last = None
        if names[i] or (x[i] and which[i] < 0.6):
            if which[i] < 0.7:
                first = str(other_first[i])
            if which[i] >= 0.5 and other_last[i] != ch.last[i]:
                last = f"{ch.last[i]}-{other_last[i]}"
        out[i] = (first, last, str(legal_gender[i]) if x[i] else None)
    return out


def student_rows(d: District, ch: Chunk, codes: np.ndarray) -> list[tuple[Any, ...]]:
    n = len(ch.ids)
    cur = np.full(n, -1, dtype=np.int64)
    for no in (0, 1):                                   # the second enrollment, if any, is the current one
        segs = np.flatnonzero(ch.seg_no == no)
        cur[ch.seg_stu[segs]] = segs
    enrolled = cur >= 0
    school = np.where(enrolled, ch.seg_school[np.maximum(cur, 0)], ch.school)
    entry = np.where(enrolled, d.sess[school, ch.seg_entry[np.maximum(cur, 0)]], d.next_year_entry)
    exit_ = np.where(enrolled, ch.seg_exit[np.maximum(cur, 0)], -1)
    exit_iso = iso(np.maximum(exit_, 0))
    exit_iso[exit_ < 0] = None
    status = np.select([ch.kind == EXIT, ch.kind == GRAD, ch.kind == PREREG], [2, 3, -1], 0)
    # The current enrollment's codes; a pre-registered student (next year's enrollment) is primary, no exit.
    cur_codes = np.full((n, len(CODE_COLS)), None, dtype=object)
    cur_codes[:, 0] = PRIMARY
    cur_codes[enrolled] = codes[cur[enrolled]]
    return list(zip(
        ch.ids.tolist(), ch.dcid.tolist(), d.student_numbers(ch.ids).tolist(), ch.ssid.tolist(),
        ch.first.tolist(), ch.last.tolist(), iso(ch.dob).tolist(), ch.gender.tolist(),
        d.school_numbers[school].tolist(), ch.grade.tolist(), iso(entry).tolist(), exit_iso.tolist(),
        status.tolist(), ch.excluded.tolist(), *(cur_codes[:, k].tolist() for k in range(len(CODE_COLS))),
        strict=True))


# --- the enrollment's CALPADS codes (SENR 1.23, 1.26-1.29) --------------------------------------------

def exit_codes(d: District, ch: Chunk, rng: np.random.Generator) -> np.ndarray:
    """Per enrollment (segment) the CODE_COLS values; exit codes only on closed enrollments.

    - mid-year transfer inside the district (the first of two enrollments): T160, or 15% T165 with the
      school the student moved to as the Expected Receiver School;
    - leaving the district (EXIT): T160; 12% T165 with a receiver school outside the district (a 7-digit
      code no demo school has); from grade 7, 18% E140 (no known enrollment, a dropout);
    - mid-year graduate (GRAD, grade 12): E230, completion status 100, UC/CSU requirements met Y (55%) or N.
    """
    m = len(ch.seg_stu)
    out = np.full((m, len(CODE_COLS)), None, dtype=object)
    out[:, STATUS] = PRIMARY
    kind, grade = ch.kind[ch.seg_stu], ch.grade[ch.seg_stu]
    u, u2 = rng.random(m), rng.random(m)
    outside = np.array([f"{v:07d}" for v in rng.integers(1_000_000, 10_000_000, m)], dtype=object)
    codes_of_schools = np.array([s.code for s in d.schools], dtype=object)

    moved = ch.seg_closed & (kind == TRANSFER) & (ch.seg_no == 0)
    nxt = np.minimum(np.arange(m) + 1, m - 1)                 # segments are sorted by student, then number
    t165 = moved & (u < 0.15)
    out[moved, EXIT_CODE] = np.where(t165[moved], "T165", "T160")
    out[t165, RECEIVER] = codes_of_schools[ch.seg_school[nxt[t165]]]

    left = ch.seg_closed & (kind == EXIT)
    e140 = left & (grade >= 7) & (u >= 0.82)
    t165 = left & (u >= 0.70) & ~e140 & ((grade >= 7) | (u >= 0.85))
    out[left, EXIT_CODE] = "T160"
    out[t165, EXIT_CODE] = "T165"
    out[t165, RECEIVER] = outside[t165]
    out[e140, EXIT_CODE] = "E140"

    grad = ch.seg_closed & (kind == GRAD)
    out[grad, EXIT_CODE] = "E230"
    out[grad, COMPLETION] = "100"
    out[grad, UCCSU] = np.where(u2[grad] < 0.55, "Y", "N")
    return out


def plant_senr(d: District, ch: Chunk, codes: np.ndarray, quota: dict[str, int], sprg_planted: set[int],
               rng: np.random.Generator) -> dict[int, str]:
    """Segment index -> SENR kind (planting.SENR_KINDS), applied to codes in place: the exit's fields lose what
    the rule needs. Only students with one enrollment, an SSID, not excluded, at a reportable school and not
    carrying an SPRG planted kind, so that the record is extracted and breaks that one rule."""
    if not quota:
        return {}
    n = len(ch.ids)
    single = np.bincount(ch.seg_stu, minlength=n) == 1
    plain = (single & pd.notna(ch.ssid) & (ch.excluded == 0) & (ch.school != d.excluded_school)
             & ~np.isin(np.arange(n), list(sprg_planted)))
    seg_of = np.full(n, -1, dtype=np.int64)
    seg_of[ch.seg_stu] = np.arange(len(ch.seg_stu))
    pools = {"exit": plain & (ch.kind == EXIT), "grad": plain & (ch.kind == GRAD)}
    taken = np.zeros(n, dtype=bool)
    out: dict[int, str] = {}
    for kind, count in quota.items():
        cands = np.flatnonzero(pools[SENR_KINDS[kind].needs] & ~taken)
        if not len(cands):
            cands = np.flatnonzero(pools["exit"] & ~taken)       # a district too small to have a graduate
        for i in sorted(int(v) for v in rng.choice(cands, size=min(count, len(cands)), replace=False)):
            taken[i] = True
            seg = int(seg_of[i])
            out[seg] = kind
            row = codes[seg]
            if kind == "exit_no_reason":
                row[EXIT_CODE] = row[RECEIVER] = row[COMPLETION] = row[UCCSU] = None
            elif kind == "e230_no_completion":
                row[EXIT_CODE], row[RECEIVER], row[COMPLETION], row[UCCSU] = "E230", None, None, None
            elif kind == "t165_no_receiver":
                row[EXIT_CODE], row[RECEIVER], row[COMPLETION], row[UCCSU] = "T165", None, None, None
    return out


# --- planted violations -------------------------------------------------------------------------------

def choose_planted(d: District, ch: Chunk, stu_x: dict[int, Any], quota: dict[str, int],
                   rng: np.random.Generator) -> dict[int, str]:
    """Chunk index -> kind, for students that are otherwise plain: SSID, not excluded, M/F, no legal override,
    one enrollment at a reportable school. Student-level changes (SSID, gender, legal name) are applied here."""
    if not quota:
        return {}
    n = len(ch.ids)
    single = np.bincount(ch.seg_stu, minlength=n) == 1
    plain = (single & pd.notna(ch.ssid) & (ch.excluded == 0) & (ch.school != d.excluded_school)
             & np.isin(ch.gender, ["M", "F"]) & ~np.isin(np.arange(n), list(stu_x)))
    level = d.levels[ch.school]
    seg_of = np.full(n, -1, dtype=np.int64)
    seg_of[ch.seg_stu] = np.arange(len(ch.seg_stu))     # only single-enrollment students are used below
    last_idx = np.where(seg_of >= 0, ch.seg_last[np.maximum(seg_of, 0)], 0)
    full = plain & (ch.kind == FULL)
    pools = {
        "full": full,
        "exit": plain & (ch.kind == EXIT) & (last_idx <= 170),
        "late": plain & (ch.kind == LATE),
        "title1": full & d.title1[ch.school],
        "high": full & (level == HIGH),
        "secondary": full & np.isin(level, [MIDDLE, HIGH]),
    }
    taken = np.zeros(n, dtype=bool)
    planted: dict[int, str] = {}
    for kind, count in quota.items():
        need = KINDS[kind].needs
        cands = np.flatnonzero(pools[need] & ~taken)
        if len(cands) == 0 and need not in ("exit", "late"):   # these kinds need that kind of enrollment
            cands = np.flatnonzero(full & ~taken)
        chosen = rng.choice(cands, size=min(count, len(cands)), replace=False) if len(cands) else []
        for i in sorted(int(v) for v in chosen):
            taken[i] = True
            planted[i] = kind
            if kind == "ssid_format":
                ch.ssid[i] = str(ch.ssid[i])[:9]
            elif kind == "gender_x_no_legal":
                ch.gender[i] = "X"
            elif kind == "gender_invalid":
                ch.gender[i] = "Q"
            elif kind == "legal_first_name_too_long":
                stu_x[i] = (LONG_FIRST[i % len(LONG_FIRST)], None, None)
    return planted


def planted_programs(d: District, ch: Chunk, planted: dict[int, str], stu_x: dict[int, Any],
                     rng: np.random.Generator) -> pd.DataFrame:
    seg_of = np.full(len(ch.ids), -1, dtype=np.int64)
    seg_of[ch.seg_stu] = np.arange(len(ch.seg_stu))
    rows = []
    for i, kind in sorted(planted.items()):
        s = int(seg_of[i])
        school = int(ch.seg_school[s])
        pool = d.by_level[d.schools[school].level]
        other = int(pool[(np.searchsorted(pool, school) + 1) % len(pool)])
        ctx = PlantContext(school=school, other_school=other, entry_idx=int(ch.seg_entry[s]),
                           last_idx=int(ch.seg_last[s]), sess=d.sess[school], dob=int(ch.dob[i]),
                           year_last=d.year_last, cpa=(d.schools[school].academies or (None,))[0], rng=rng)
        row = planted_program(kind, ctx)
        row.update(stu=i, kind=kind)
        rows.append(row)
    return _frame(rows)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in PROGRAM_TEXT:
        if col not in df:
            df[col] = None
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    if "services" not in df:
        df["services"] = None
    for col, default in (("start_idx", -1), ("end_idx", -1)):
        if col not in df:
            df[col] = default
    return df


# --- clean program memberships --------------------------------------------------------------------------

def clean_programs(d: District, ch: Chunk, rng: np.random.Generator, exclude: np.ndarray,
                   rate_scale: float = 1.0) -> pd.DataFrame:
    """Program memberships at plausible rates; every code appears at least MIN_PER_CODE times per chunk
    (where the chunk has eligible students), so that a small district still shows every program."""
    n = len(ch.ids)
    g = ch.grade
    enrolled = np.bincount(ch.seg_stu, minlength=n) > 0
    level = d.levels[ch.seg_school]
    parts: list[pd.DataFrame] = []

    def add(code: str, eligible: np.ndarray, rate: float, memb: np.ndarray | str = "3", p_end: float = 0.05,
            seg_ok: np.ndarray | None = None, early: np.ndarray | None = None,
            forced_end: np.ndarray | None = None, chosen: np.ndarray | None = None, **fields: Any) -> None:
        eligible = eligible & ~exclude & enrolled
        if seg_ok is not None:
            eligible &= np.bincount(ch.seg_stu, weights=seg_ok, minlength=n) > 0
        who = eligible & ((rng.random(n) < rate * rate_scale) if chosen is None else chosen)
        missing = min(MIN_PER_CODE - int(who.sum()), int((eligible & ~who).sum()))
        if missing > 0:
            who[rng.choice(np.flatnonzero(eligible & ~who), size=missing, replace=False)] = True
        parts.append(memberships(d, ch, rng, code, who, memb, p_end, seg_ok, early, forced_end, fields,
                                 sped=code == "144"))

    def m1(p1: float) -> np.ndarray:
        return np.where(rng.random(n) < p1, "1", "3").astype(object)

    everyone = np.ones(n, dtype=bool)
    u = rng.random(n)
    jul1 = np.where(rng.random(n) < 0.3, d.year_first, -1)
    add("181", everyone, 0, "1", 0.02, early=jul1, chosen=u < 0.48)
    add("182", u >= 0.48, 0, "1", 0.03, early=jul1, chosen=u < 0.56)
    add("101", everyone, 0.035, m1(0.15), 0.05)
    add("108", g >= 7, 0.012, "3", 0.25, seg_ok=np.isin(level, [MIDDLE, HIGH]))
    academy = _academies(d, ch.seg_school, rng)
    add("113", g >= 10, 0.08, "3", 0.05, seg_ok=pd.notna(academy), seg_fields={"cpa": academy})
    add("122", g <= 8, 0.22, "3", 0.10, seg_ok=d.title1[ch.seg_school])
    prior = _prior_start(d, ch, rng, min_grade=3)
    add("127", g >= 3, 0.07, m1(0.85), 0.01, early=prior)
    migrant = np.array(["06" + f"{v:09d}" for v in rng.integers(0, 10**9, n)], dtype=object)
    add("135", everyone, 0.02, m1(0.7), 0.05, early=_prior_start(d, ch, rng, min_grade=1), migrant=migrant)
    sped_exit = rng.random(n) < 0.05
    dsea_u = rng.random(n)
    add("144", everyone, 0.12, m1(0.05), 0.0, forced_end=sped_exit,
        disab=rng.choice(DISABILITIES, size=n, p=DISABILITY_P),
        dsea=np.select([dsea_u < 0.7, dsea_u < 0.9], [None, d.lea_code], d.other_dsea).astype(object),
        spedexit=np.where(sped_exit, rng.choice(SPED_EXIT_CODES, size=n), None))
    add("162", g >= 9, 0.006, "3", 0.15)
    add("174", everyone, 0.002, "3", 0.15)
    add("180", g >= 11, 0.006, "3", 0.30)
    add("185", g == -1, 1.0, "3", 0.0, seg_ok=level == ELEMENTARY)
    add("190", everyone, 0.007, "3", 0.10)
    add("191", everyone, 0.025, "3", 0.12,
        dwelling=rng.choice(DWELLINGS, size=n, p=[0.10, 0.70, 0.05, 0.15]),
        uy=np.where(rng.random(n) < 0.08, "Y", "N").astype(object),
        ry=np.where(rng.random(n) < 0.03, "Y", "N").astype(object))
    add("192", everyone, 0.012, "3", 0.03)
    return pd.concat(parts, ignore_index=True)


def _academies(d: District, seg_school: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per enrollment: one of its school's partnership academies, None where the school has none."""
    pick = rng.random(len(seg_school))
    out = np.full(len(seg_school), None, dtype=object)
    for s in d.schools:
        if s.academies:
            m = seg_school == s.index
            out[m] = np.array(s.academies, dtype=object)[(pick[m] * len(s.academies)).astype(np.int64)]
    return out


def _prior_start(d: District, ch: Chunk, rng: np.random.Generator, min_grade: int) -> np.ndarray:
    """An eligibility start in an earlier school year (after the student turned six), or -1."""
    n = len(ch.ids)
    start = d.year_first - rng.integers(30, 1100, n)
    good = (ch.grade >= min_grade) & (start > ch.dob + 6 * 365) & (rng.random(n) < 0.6)
    return np.where(good, start, -1)


def memberships(d: District, ch: Chunk, rng: np.random.Generator, code: str, who: np.ndarray,
                memb: np.ndarray | str, p_end: float, seg_ok: np.ndarray | None, early: np.ndarray | None,
                forced_end: np.ndarray | None, fields: dict[str, Any], sped: bool = False) -> pd.DataFrame:
    """One membership per enrollment (segment) of each chosen student, inside that enrollment.

    At an enrollment that ended, the membership carries the enrollment's last day as its own end date when
    the student went on to another school (so that a report range after the move does not find an open
    membership at a school the student left), and 40% of the time otherwise (the builder derives the rest).
    Special education (144) gets no derived end date without an exit code, so there it always carries one.
    """
    seg_fields = fields.pop("seg_fields", {})
    keep = who[ch.seg_stu]
    if seg_ok is not None:
        keep &= seg_ok
    sel = np.flatnonzero(keep)
    stu, school = ch.seg_stu[sel], ch.seg_school[sel]
    entry, last = ch.seg_entry[sel], ch.seg_last[sel]
    m = len(sel)
    membership = np.full(m, memb, dtype=object) if isinstance(memb, str) else memb[stu]
    span = last - entry
    delay = np.where(rng.random(m) < 0.3, (rng.random(m) * (np.minimum(span, 30) + 1)).astype(np.int64), 0)
    start_idx = entry + delay
    start = d.sess[school, start_idx]
    if early is not None:       # eligibility that began before this enrollment (first enrollment only)
        e = early[stu]
        use = (membership == "1") & (ch.seg_no[sel] == 0) & (e >= 0)
        start = np.where(use, e, start)
        start_idx = np.where(use, entry, start_idx)
    has_end = rng.random(m) < p_end
    if forced_end is not None:
        has_end |= forced_end[stu]
    end_idx = start_idx + (rng.random(m) * (last - start_idx + 1)).astype(np.int64)
    # A closed enrollment: the program often carries the enrollment's last day as its own end date.
    closed = ch.seg_closed[sel]
    carry_p = np.where(sped | (ch.kind[stu] == TRANSFER), 1.0, 0.4)
    carry = ~has_end & closed & (rng.random(m) < carry_p)
    end_idx = np.where(carry, last, end_idx)
    has_end |= carry
    end = np.where(has_end, d.sess[school, end_idx], -1)
    df = pd.DataFrame({"stu": stu, "school": school, "code": code, "memb": membership, "start": start,
                       "end": end, "start_idx": start_idx, "end_idx": np.where(has_end, end_idx, last)})
    for col in PROGRAM_TEXT:
        if col in fields:
            df[col] = fields[col][stu]
        elif col in seg_fields:
            df[col] = seg_fields[col][sel]
        else:
            df[col] = None
    if sped:   # ended at a school the student left: "moved, known to be continuing"-style exit code
        df["spedexit"] = np.where(has_end & df["spedexit"].isna(), "78", df["spedexit"].to_numpy(dtype=object))
    df["services"] = None
    return df


def program_rows(d: District, ch: Chunk, progs: pd.DataFrame) -> list[tuple[Any, ...]]:
    start = iso(progs["start"].to_numpy())
    end_raw = progs["end"].to_numpy()
    end = iso(np.maximum(end_raw, 0))
    end[end_raw < 0] = None
    stu = progs["stu"].to_numpy()
    text = [texts(progs[c]) for c in ("cpa", "migrant", "disab", "dsea", "dwelling", "uy", "ry", "spedexit")]
    return list(zip(
        progs["id"].tolist(), ch.dcid[stu].tolist(), d.school_numbers[progs["school"].to_numpy()].tolist(),
        texts(progs["code"]), texts(progs["memb"]), start.tolist(), end.tolist(), *text, strict=True))


def texts(values: pd.Series) -> list[str | None]:
    """Plain str or None (pandas 3 stores missing strings as NaN, which must not reach the database)."""
    return [v if isinstance(v, str) else None for v in values.tolist()]


def service_rows(d: District, ch: Chunk, progs: pd.DataFrame, rng: np.random.Generator,
                 counters: Counters) -> list[tuple[Any, ...]]:
    """Title I services: 1-3 distinct codes per 122 membership, each on in-session days inside it."""
    t1 = progs[progs["code"] == "122"]
    stu_l, school_l, code_l, day_l = [], [], [], []
    for stu, school, s_idx, e_idx, planted in zip(t1["stu"], t1["school"], t1["start_idx"], t1["end_idx"],
                                                  t1["services"], strict=True):
        if isinstance(planted, list):
            pairs = planted
        else:
            n_codes = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
            codes = rng.choice(SERVICE_CODES, size=n_codes, replace=False, p=SERVICE_P)
            pairs = []
            for c in sorted(codes):
                idx = np.unique(rng.integers(s_idx, e_idx + 1, int(rng.integers(2, 16))))
                pairs += [(c, int(v)) for v in d.sess[school, idx]]
        for c, day in pairs:
            stu_l.append(stu)
            school_l.append(school)
            code_l.append(c)
            day_l.append(day)
    ids = counters.take("service", len(stu_l))
    stu_a = np.array(stu_l, dtype=np.int64)
    return list(zip(ids.tolist(), ch.dcid[stu_a].tolist(), d.school_numbers[np.array(school_l, dtype=np.int64)]
                    .tolist(), code_l, iso(np.array(day_l, dtype=np.int64)).tolist(), strict=True))


# --- attendance -----------------------------------------------------------------------------------------

ABSENT_CODE = np.array([c[2] == "Absent" for c in ATTENDANCE_CODES])
CODE_P = np.array([c[4] for c in ATTENDANCE_CODES])


def attendance_rows(d: District, ch: Chunk, rng: np.random.Generator, counters: Counters, write: bool,
                    ) -> tuple[list[tuple[Any, ...]], tuple[np.ndarray, np.ndarray]]:
    """Daily attendance exceptions (~5% of student-days absent); also returns the absent (segment, day index)."""
    n = len(ch.ids)
    mix = rng.random(n)
    rate = np.select([mix < 0.80, mix < 0.95], [rng.uniform(0.01, 0.06, n), rng.uniform(0.08, 0.15, n)],
                     rng.uniform(0.20, 0.35, n))
    days = ch.seg_last - ch.seg_entry + 1
    k = rng.binomial(days, rate[ch.seg_stu])
    seg = np.repeat(np.arange(len(days)), k)
    pos = ch.seg_entry[seg] + (rng.random(len(seg)) * days[seg]).astype(np.int64)
    key = np.unique(seg * 256 + pos)
    seg, pos = key // 256, key % 256
    code = rng.choice(len(ATTENDANCE_CODES), size=len(seg), p=CODE_P)
    absent = ABSENT_CODE[code]
    rows: list[tuple[Any, ...]] = []
    if write:
        ids = counters.take("attendance", len(seg))
        school = ch.seg_school[seg]
        rows = list(zip(ids.tolist(), ch.ids[ch.seg_stu[seg]].tolist(), d.school_numbers[school].tolist(),
                        iso(d.sess[school, pos]).tolist(), attendance_code_id(school, code).tolist(),
                        ["ATT_ModeDaily"] * len(seg), strict=True))
    return rows, (seg[absent], pos[absent])
