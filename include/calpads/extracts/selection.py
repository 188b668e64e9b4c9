"""Which SIS rows a CALPADS file reads: the one implementation of the selection, over staged tables.

Every source (SQL database or vendor API) stages the same contract tables
(calpads.staging.contract); the rules below pick from them, in pandas, for every source:

- the Reporting LEA (PREFS 'districtnumber' at district level) and the reportable schools (not
  excluded from state reporting), narrowed by the run's schools / sub-districts;
- the Student Criteria of PowerSchool's Student Program Records report: students not excluded
  from state reporting (with an SSID, where the file requires one), in the run's students;
- enrollments pre-selected on their raw dates (entry on or before the report end, EXITDATE blank
  or after the report start); the exact range test on the last in-session day is
  calpads.extracts.enrollment's;
- SPRG's program set, membership dates, Title I services in the range;
- what the two attendance aggregates are computed over, by every source (``category_days_scope``,
  ``absent_days_range``, ``candidate_enrollments``): every reportable school and LEAP's whole
  reporting year, whatever the run's schools and dates.

A date the SIS stores as text and that is not shaped 'YYYY-MM-DD' (``not_a_date``) is never
dropped by a date test: the row is kept so that the builder lists it as not extracted, or the
gate holds its record back (a dropped row of a submitted record would become a delete). Dates
compare as ISO text, as a DATE column compares in SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from calpads.extracts.arrow_ops import first_of_each, inner_join
from calpads.run_scope import RunScope, academic_year_bounds
from calpads.sources.sql_enrollment import CODE_TABLES, CURRENT, EARLIER, EnrollmentPull
from calpads.sources.sql_sis import SisDataError, SprgPull, narrow_schools
from calpads.sources.sql_skipped import BAD_DATES, ENROLLMENT_EXCLUDED, EXCLUDED, NO_SSID
from calpads.sources.sql_skipped import COLUMNS as SKIPPED_COLUMNS
from calpads.staging import contract as c
from calpads.staging.store import StagedTables

TITLE_I = "122"
STUDENT_OUT = ["student_id", "dcid", "student_number", "ssid", "first_name", "last_name", "dob", "gender"]
LEGAL = ["legalfirstname", "legallastname", "legalgender"]
PROGRAM_OUT = ["student_id", "program_id", "schoolid", "programcode", "programmembershipcode", "programstartdate",
               "programenddate", "partnershipacademyid", "migrantstudentid", "prmarydisabilitycode",
               "distspedaccountability", "dwellingtype", "unaccompaniedyouth", "runawayyouth", "spedexitcode"]


# --------------------------------------------------------------------------- date and flag tests
def _text(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "")


def _arrow(s: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow text of a column pandas holds as Arrow text (the staged tables' text), else None. The tests
    below compare it in Arrow, as they compare Python str (UTF-8 byte order is code point order), without a
    Python object per row."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        return pa.chunked_array(pa.array(s.array))
    return None


def _true(flags: pa.ChunkedArray) -> np.ndarray:
    """An Arrow test's answer as a numpy mask, null (a blank value) false."""
    return pc.fill_null(flags, False).to_numpy()


def on_or_before(s: pd.Series, bound: str) -> np.ndarray:
    """value <= bound (a blank value never is)."""
    if (arr := _arrow(s)) is not None:
        return _true(pc.less_equal(arr, bound))
    return (s.notna() & (_text(s) <= bound)).to_numpy(dtype=bool)


def on_or_after(s: pd.Series, bound: str) -> np.ndarray:
    """value >= bound (a blank value never is)."""
    if (arr := _arrow(s)) is not None:
        return _true(pc.greater_equal(arr, bound))
    return (s.notna() & (_text(s) >= bound)).to_numpy(dtype=bool)


def after(s: pd.Series, bound: str) -> np.ndarray:
    if (arr := _arrow(s)) is not None:
        return _true(pc.greater(arr, bound))
    return (s.notna() & (_text(s) > bound)).to_numpy(dtype=bool)


def not_a_date(s: pd.Series) -> np.ndarray:
    """A value not shaped 'YYYY-MM-DD' (NULL is not: it is blank)."""
    if (arr := _arrow(s)) is not None:   # pandas' str.len and str[i] are these kernels (code points)
        shaped = pc.and_(pc.equal(pc.utf8_length(arr), 10),
                         pc.and_(pc.equal(pc.utf8_slice_codeunits(arr, 4, 5), "-"),
                                 pc.equal(pc.utf8_slice_codeunits(arr, 7, 8), "-")))
        return _true(pc.invert(shaped))
    t = _text(s).astype(str)
    shaped = (t.str.len() == 10) & (t.str[4] == "-") & (t.str[7] == "-")
    return (s.notna() & ~shaped).to_numpy(dtype=bool)


def is_blank(s: pd.Series) -> np.ndarray:
    """NULL or '' (as the SIS pull always tested an SSID; an SSID of spaces is not blank here)."""
    if (arr := _arrow(s)) is not None:
        return pc.fill_null(pc.equal(arr, ""), True).to_numpy()
    return (s.isna() | (_text(s) == "")).to_numpy(dtype=bool)


def flag_set(s: pd.Series) -> np.ndarray:
    """An INTEGER flag that is set (not 0); NULL is neither set nor clear."""
    return (s.notna() & (s != 0)).to_numpy(dtype=bool)


def flag_clear(s: pd.Series) -> np.ndarray:
    return (s == 0).to_numpy(dtype=bool)


def in_range_or_unreadable(entry: pd.Series, exit_: pd.Series, start: str, end: str) -> np.ndarray:
    """Entry on or before the end (or not a date); EXITDATE blank, after the start, or not a date."""
    return ((on_or_before(entry, end) | not_a_date(entry))
            & (exit_.isna().to_numpy(dtype=bool) | after(exit_, start) | not_a_date(exit_)))


def overlaps(entry: pd.Series, exit_: pd.Series, start: str, end: str) -> np.ndarray:
    """Entry on or before the end; EXITDATE blank or after the start (readable dates only)."""
    return on_or_before(entry, end) & (exit_.isna().to_numpy(dtype=bool) | after(exit_, start))


def _bounds(scope: RunScope) -> tuple[str, str]:
    return scope.start_date.isoformat(), scope.end_date.isoformat()


# --------------------------------------------------------------------------- district and schools
def reporting_lea(prefs: pd.DataFrame) -> str:
    """PREFS name 'districtnumber' at district level (the first such row)."""
    rows = prefs[(prefs["name"] == "districtnumber").to_numpy(dtype=bool) & flag_clear(prefs["schoolid"])]
    rows = rows.sort_values("id", kind="stable", na_position="first")
    value = rows["value"].iloc[0] if len(rows) else None
    if value is None or pd.isna(value) or not str(value).strip():
        raise SisDataError(
            "The SIS has no district number (PREFS name 'districtnumber' at district level): "
            "enter the 7-digit Reporting LEA code on PowerSchool's District Info page."
        )
    return str(value).strip()


def reportable_schools(schools: pd.DataFrame) -> pd.DataFrame:
    """school_number, school_code (the CDS code, trimmed), subdistrict of the schools not excluded from state
    reporting."""
    df = schools.loc[flag_clear(schools["state_excludefromreporting"]),
                     ["school_number", "alternate_school_number", "subdistrict"]]
    df = df.rename(columns={"alternate_school_number": "school_code"}).reset_index(drop=True)
    df["school_code"] = df["school_code"].astype("object").where(df["school_code"].notna(), None)
    df["school_code"] = df["school_code"].map(lambda v: str(v).strip() if v is not None else None)
    df["school_number"] = df["school_number"].astype("int64")
    return df


def in_session_days(calendar: pd.DataFrame, school_numbers: pd.Series) -> pd.DataFrame:
    """schoolid, date_value of the in-session days of the given schools."""
    keep = (calendar["insession"] == 1).to_numpy(dtype=bool) & calendar["schoolid"].isin(school_numbers).to_numpy()
    return calendar.loc[keep, ["schoolid", "date_value"]].reset_index(drop=True)


# --------------------------------------------------------------------------- students
def chosen_students(students: pd.DataFrame, scope: RunScope, *, require_ssid: bool) -> np.ndarray:
    """Not excluded from state reporting, in the run's students, with an SSID when required."""
    keep = flag_clear(students["state_excludefromreporting"])
    if require_ssid:
        keep = keep & ~is_blank(students["state_studentnumber"])
    if scope.students:
        keep = keep & students["student_number"].isin(list(scope.students)).to_numpy()
    return keep


def student_frame(students: pd.DataFrame, stu_x: pd.DataFrame, *extra: str) -> pd.DataFrame:
    """The student-level fields (STUDENT_OUT, ``extra`` columns, then the legal names and gender of S_CA_STU_X)."""
    s = students.rename(columns={"id": "student_id", "state_studentnumber": "ssid"})
    s = s[[*STUDENT_OUT, *extra]]
    x = stu_x[["studentsdcid", *LEGAL]].drop_duplicates("studentsdcid")
    out = s.merge(x, left_on="dcid", right_on="studentsdcid", how="left").drop(columns="studentsdcid")
    return out.astype({k: object for k in LEGAL}).reset_index(drop=True)


def _with_students(rows: pd.DataFrame, students: pd.DataFrame, on: str, key: str = "id") -> pd.DataFrame:
    """rows joined to their students (inner), the students' columns prefixed s_."""
    s = students.add_prefix("s_")
    return rows.merge(s, left_on=on, right_on=f"s_{key}", how="inner")


def enrollments_at(chosen: pd.DataFrame, reenrollments: pd.DataFrame, school_numbers: pd.Series,
                   dated: Callable[[pd.Series, pd.Series], np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current, earlier) enrollments of the chosen students at the given schools whose (entry, exit) dates pass
    ``dated``: their STUDENTS rows, and their REENROLLMENTS rows not themselves excluded from state reporting."""
    cur = chosen[chosen["schoolid"].isin(school_numbers).to_numpy() & dated(chosen["entrydate"], chosen["exitdate"])]
    r = reenrollments[reenrollments["studentid"].isin(chosen["id"]).to_numpy()
                      & flag_clear(reenrollments["state_excludefromreporting"])
                      & reenrollments["schoolid"].isin(school_numbers).to_numpy()
                      & dated(reenrollments["entrydate"], reenrollments["exitdate"])]
    return cur, r


# --------------------------------------------------------------------------- SPRG
def program_candidates(programs: pd.DataFrame, scoped_numbers: pd.Series, program_codes: list[str], start: str,
                       end: str) -> np.ndarray:
    """Programs at a school in scope, code in the run's set (or blank: listed as not extracted), membership
    started by the end (or no start, or not a date), not ended before the start ('' is blank too)."""
    code = programs["programcode"]
    ps, pe = programs["programstartdate"], programs["programenddate"]
    return (programs["schoolid"].isin(scoped_numbers).to_numpy()
            & (code.isin(program_codes).to_numpy() | is_blank(code))
            & (ps.isna().to_numpy(dtype=bool) | on_or_before(ps, end) | not_a_date(ps))
            & (is_blank(pe) | after(pe, start) | not_a_date(pe)))


def sprg_pull(staged: StagedTables, scope: RunScope, program_codes: list[str]) -> SprgPull:
    """The rows one SPRG run reads: students with a candidate program (SSID or not: a record without one is
    listed as not extracted), their enrollments at any reportable school (student selection), their programs
    at the schools in scope, Title I services in the range, and the enrolled students (delete guard)."""
    start, end = _bounds(scope)
    lea = reporting_lea(staged.frame(c.PREFS))
    all_schools = reportable_schools(staged.frame(c.SCHOOLS))
    schools = narrow_schools(all_schools, scope)
    numbers, scoped = all_schools["school_number"], schools["school_number"]
    calendar = in_session_days(staged.frame(c.CALENDAR_DAY), numbers)

    students, reenrollments = staged.frame(c.STUDENTS), staged.frame(c.REENROLLMENTS)
    programs = staged.frame(c.PROGRAMS)
    candidate = program_candidates(programs, scoped, program_codes, start, end)
    listed = chosen_students(students, scope, require_ssid=False)
    chosen = students[listed & students["dcid"].isin(programs.loc[candidate, "studentsdcid"]).to_numpy()]

    cur, r = enrollments_at(chosen, reenrollments, numbers, lambda a, b: in_range_or_unreadable(a, b, start, end))
    cols = ["student_id", "schoolid", "entrydate", "exitdate"]
    enrollments = pd.concat([cur.rename(columns={"id": "student_id"})[cols],
                             r.rename(columns={"studentid": "student_id"})[cols]], ignore_index=True)

    student_rows = student_frame(chosen, staged.frame(c.STU_X))
    progs = _with_student_ids(programs, np.flatnonzero(candidate), students, np.flatnonzero(listed))
    progs = progs.rename(columns={"id": "program_id"})[PROGRAM_OUT]

    services = pd.DataFrame(columns=["student_id", "schoolid", "servicecode", "unreadable_date"])
    if TITLE_I in program_codes:
        v = staged.frame(c.SERVICES)
        d = v["servicedate"]
        unreadable = not_a_date(d)
        keep = np.flatnonzero(on_or_after(d, start) & on_or_before(d, end) | unreadable)
        v = _with_student_ids(v.assign(unreadable_date=unreadable.astype("int64")), keep, chosen,
                              np.arange(len(chosen)))
        services = v[["student_id", "schoolid", "servicecode", "unreadable_date"]]
        services = services[first_of_each([services["student_id"].to_numpy(), services["schoolid"].to_numpy(),
                                           pd.factorize(services["servicecode"], use_na_sentinel=False)[0],
                                           services["unreadable_date"].to_numpy()])].reset_index(drop=True)
    return SprgPull(lea, all_schools, schools, calendar, enrollments, student_rows, progs, services,
                    enrolled_students(staged, scope, scoped))


def _with_student_ids(rows: pd.DataFrame, at: np.ndarray, students: pd.DataFrame, among: np.ndarray) -> pd.DataFrame:
    """The rows at positions ``at`` joined to their students among the rows ``among`` of ``students`` by DCID
    (STUDENTSDCID = DCID), each with its student's ``student_id``: ``rows.merge(students, how="inner")``'s rows, in
    its order, moved by position instead of merged column by column. A fresh index."""
    r, s = inner_join([rows["studentsdcid"].to_numpy()[at]], [students["dcid"].to_numpy()[among]])
    out = rows.iloc[at[r]].reset_index(drop=True)
    out["student_id"] = students["id"].iloc[among[s]].reset_index(drop=True)
    return out


def enrolled_students(staged: StagedTables, scope: RunScope, school_numbers: pd.Series) -> pd.DataFrame:
    """Local Student IDs of the students (not excluded from state reporting, SSID or not) with an enrollment,
    current or earlier, at one of the schools overlapping the report range by its raw dates. Wider than the
    exact rule on the last in-session day, on purpose: it decides which deletes need allow_enrolled_deletes."""
    start, end = _bounds(scope)
    students, reenrollments = staged.frame(c.STUDENTS), staged.frame(c.REENROLLMENTS)
    listed = students[chosen_students(students, scope, require_ssid=False)]
    cur, r = enrollments_at(listed, reenrollments, school_numbers, lambda a, b: overlaps(a, b, start, end))
    earlier = listed.loc[listed["id"].isin(r["studentid"]).to_numpy(), "student_number"]
    return pd.DataFrame({"student_number": pd.Series(_distinct_sorted([cur["student_number"], earlier]), dtype=object)})


def _distinct_sorted(parts: list[pd.Series]) -> list:
    """The distinct values of the columns, blanks dropped, sorted: in Arrow when they are Arrow text (its byte
    order is Python's order of str)."""
    arrays = [_arrow(p) for p in parts]
    if any(a is None for a in arrays):
        return sorted(set().union(*(set(p.dropna()) for p in parts)))
    texts = pa.chunked_array([chunk.cast(pa.large_string()) for a in arrays for chunk in a.chunks], pa.large_string())
    distinct = pc.unique(texts.drop_null())
    return distinct.take(pc.sort_indices(distinct)).to_pylist()


# --------------------------------------------------------------------------- SENR, STAS, LEAP
def codes_read(staged: StagedTables) -> dict[str, frozenset[str]]:
    """Which contract v2 enrollment codes the SIS has, per enrollment source (CURRENT, EARLIER)."""
    tables = {CURRENT: c.STUDENTS, EARLIER: c.REENROLLMENTS}
    return {src: frozenset(col for col in c.ENROLLMENT_CODES if col not in staged.missing_columns(tables[src]))
            for src in CODE_TABLES}


def candidate_enrollments(students: pd.DataFrame, reenrollments: pd.DataFrame, scope: RunScope,
                          school_numbers: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current, earlier) candidate enrollments of SENR, STAS and LEAP and of STAS's day counts: the chosen students
    with an SSID, at the given schools, overlapping the report range by their raw dates (the exact range test on
    the last in-session day is calpads.extracts.enrollment's)."""
    start, end = _bounds(scope)
    with_ssid = students[chosen_students(students, scope, require_ssid=True)]
    return enrollments_at(with_ssid, reenrollments, school_numbers, lambda a, b: overlaps(a, b, start, end))


def category_days_scope(scope: RunScope) -> RunScope:
    """What ``attendance_category_days`` is counted over, by every source: the run's dates through the STAS
    counting date (calpads.extracts.stas.counted_through) and its students, at every reportable school. STAS keeps
    the schools it reports; a run narrowed to some schools still works out 13.24 over the whole LEA
    (stas.lea_wide_recovery)."""
    from calpads.extracts.stas import counting_scope

    return replace(counting_scope(scope), schools=(), subdistricts=())


def absent_days_range(scope: RunScope) -> tuple[str, str]:
    """The dates of ``absent_days``, by every source: LEAP's reporting year, July 1 - June 30
    (calpads.extracts.leap.reporting_year), whatever the run's dates."""
    first, last = academic_year_bounds(scope.academic_year)
    return first.isoformat(), last.isoformat()


def enrollment_pull(staged: StagedTables, scope: RunScope, *, require_ssid: bool = True) -> EnrollmentPull:
    """The enrollments (current on STUDENTS, earlier on REENROLLMENTS) at the schools in scope of the chosen
    students, pre-selected on their raw dates, with the enrollment codes; the student-level fields; the
    enrollments left out with their reason (``skipped``)."""
    lea = reporting_lea(staged.frame(c.PREFS))
    schools = reportable_schools(staged.frame(c.SCHOOLS))
    scoped = narrow_schools(schools, scope)
    calendar = in_session_days(staged.frame(c.CALENDAR_DAY), schools["school_number"])
    students, reenrollments = staged.frame(c.STUDENTS), staged.frame(c.REENROLLMENTS)
    numbers = scoped["school_number"]

    cur, r = candidate_enrollments(students, reenrollments, scope, numbers)
    cols = ["student_id", "schoolid", "grade_level", "entrydate", "exitdate", "source", "reenrollment_id",
            *c.ENROLLMENT_CODES]
    current = cur.rename(columns={"id": "student_id"}).assign(source=CURRENT, reenrollment_id=None)[cols]
    earlier = r.rename(columns={"studentid": "student_id", "id": "reenrollment_id"}).assign(source=EARLIER)[cols]
    enrollments = pd.concat([current, earlier], ignore_index=True)

    chosen = students[chosen_students(students, scope, require_ssid=require_ssid)]
    student_rows = student_frame(chosen, staged.frame(c.STU_X), "grade_level", "schoolid")
    student_rows = student_rows[[*STUDENT_OUT, "grade_level", "schoolid", *LEGAL]]
    return EnrollmentPull(lea, schools, scoped, calendar, enrollments, student_rows, codes_read(staged),
                          skipped_enrollments(staged, scope, numbers))


def skipped_enrollments(staged: StagedTables, scope: RunScope, school_numbers: pd.Series) -> pd.DataFrame:
    """The enrollments at the given schools, overlapping the report range by their raw dates or with a date that
    is not a date, that ``enrollment_pull`` leaves out, each with its first reason (calpads.sources.sql_skipped
    codes, in this order): excluded student, excluded enrollment, a date that is not a date, no SSID."""
    start, end = _bounds(scope)
    students, reenrollments = staged.frame(c.STUDENTS), staged.frame(c.REENROLLMENTS)
    if scope.students:
        students = students[students["student_number"].isin(list(scope.students)).to_numpy()]
    cur = students.rename(columns={"id": "student_id"}).assign(r_excluded=False)
    cur = cur.assign(s_excl=cur["state_excludefromreporting"], s_ssid=cur["state_studentnumber"],
                     s_number=cur["student_number"])
    r = _with_students(reenrollments, students, "studentid")
    r = r.assign(student_id=r["studentid"], r_excluded=flag_set(r["state_excludefromreporting"]),
                 s_excl=r["s_state_excludefromreporting"], s_ssid=r["s_state_studentnumber"],
                 s_number=r["s_student_number"])
    parts = []
    for rows in (cur, r):
        rows = rows[rows["schoolid"].isin(school_numbers).to_numpy()
                    & in_range_or_unreadable(rows["entrydate"], rows["exitdate"], start, end)]
        bad = not_a_date(rows["entrydate"]) | not_a_date(rows["exitdate"])
        excluded, enr_excluded = flag_set(rows["s_excl"]), rows["r_excluded"].to_numpy(dtype=bool)
        no_ssid = is_blank(rows["s_ssid"])
        keep = bad | excluded | enr_excluded | no_ssid
        reason = np.select([excluded, enr_excluded, bad], [EXCLUDED, ENROLLMENT_EXCLUDED, BAD_DATES], NO_SSID)
        parts.append(pd.DataFrame({"student_id": rows["student_id"].to_numpy(), "student_number": rows["s_number"],
                                   "schoolid": rows["schoolid"].to_numpy(), "entrydate": rows["entrydate"],
                                   "exitdate": rows["exitdate"], "reason_code": reason}).loc[keep])
    return pd.concat(parts, ignore_index=True)[SKIPPED_COLUMNS]


def student_status(staged: StagedTables, student_numbers: list[str]) -> pd.DataFrame:
    """student_number, excluded, no_ssid of the given numbers the SIS knows (others are absent)."""
    s = staged.frame(c.STUDENTS)
    s = s[s["student_number"].isin({str(n) for n in student_numbers}).to_numpy()]
    ssid = s["state_studentnumber"]
    return pd.DataFrame({"student_number": s["student_number"].astype(str).to_numpy(),
                         "excluded": flag_set(s["state_excludefromreporting"]),
                         "no_ssid": (ssid.isna() | (_text(ssid).astype(str).str.strip() == "")).to_numpy(bool)})
