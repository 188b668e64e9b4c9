"""SprgPull from contract-shaped table rows, for every API source: the SQL source's selection, in pandas.

``calpads.sources.sql_sis.pull_sprg`` pushes its selection into SQL; an API
source fetches the contract tables' rows (or maps its vendor's records onto
them) and hands them to ``assemble_sprg_pull``, which applies the very same
selection here, once, for all API sources. Each filter below names the SQL it
mirrors; keep the two in step (tests/integration/test_api_sources.py compares
the frames of both on the demo district).

Rows are dicts keyed by the contract's lower-case column names, values as text
or None. They are converted to the Python types the database driver hands
pandas for the contract's column types (INTEGER -> int, text and dates -> str
'YYYY-MM-DD'), and frames are built with ``DataFrame.from_records`` as
``pandas.read_sql`` does, so the dtypes come out the same as the SQL pull's.

SQL comparisons of dates are comparisons of ISO text here: identical for DATE
columns and for text-typed dates on SQLite. (One edge differs: on a SQLite SIS a
DATE-declared column holding a bare number such as 20250813 is compared as a
number by SQLite; an API only ever hands over text.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from calpads.run_scope import RunScope
from calpads.sources.sql_sis import SisDataError, SprgPull, narrow_schools

# The columns the SPRG pull reads, per contract table; INTEGER columns listed in INT_COLUMNS.
SPRG_TABLE_COLUMNS: dict[str, list[str]] = {
    "prefs": ["id", "name", "value", "schoolid"],
    "schools": ["id", "school_number", "alternate_school_number", "subdistrict", "state_excludefromreporting"],
    "calendar_day": ["id", "schoolid", "date_value", "insession"],
    "students": ["id", "dcid", "student_number", "state_studentnumber", "first_name", "last_name", "dob", "gender",
                 "schoolid", "entrydate", "exitdate", "state_excludefromreporting"],
    "reenrollments": ["id", "studentid", "schoolid", "entrydate", "exitdate", "state_excludefromreporting"],
    "s_ca_stu_x": ["studentsdcid", "legalfirstname", "legallastname", "legalgender"],
    "s_ca_stu_calpadsprograms_c": ["id", "studentsdcid", "schoolid", "programcode", "programmembershipcode",
                                   "programstartdate", "programenddate", "partnershipacademyid", "migrantstudentid",
                                   "prmarydisabilitycode", "distspedaccountability", "dwellingtype",
                                   "unaccompaniedyouth", "runawayyouth", "spedexitcode"],
    "s_ca_calpads_studentservices_c": ["id", "studentsdcid", "schoolid", "servicecode", "servicedate"],
}
INT_COLUMNS = {
    "id", "school_number", "state_excludefromreporting", "schoolid", "insession", "dcid", "studentid",
    "studentsdcid",
}
PROGRAM_OUT = ["student_id", "program_id", "schoolid", "programcode", "programmembershipcode", "programstartdate",
               "programenddate", "partnershipacademyid", "migrantstudentid", "prmarydisabilitycode",
               "distspedaccountability", "dwellingtype", "unaccompaniedyouth", "runawayyouth", "spedexitcode"]
STUDENT_OUT = ["student_id", "dcid", "student_number", "ssid", "first_name", "last_name", "dob", "gender",
               "legalfirstname", "legallastname", "legalgender"]
ENROLLMENT_OUT = ["student_id", "schoolid", "entrydate", "exitdate"]

Rows = list[dict[str, Any]]


def typed(rows: Iterable[dict[str, Any]], columns: Iterable[str]) -> Rows:
    """Text values -> the driver's Python types (int for the contract's INTEGER columns)."""
    cols = list(columns)
    out = []
    for r in rows:
        d = {}
        for c in cols:
            v = r.get(c)
            if v is not None and c in INT_COLUMNS:
                v = int(v)
            elif v is not None and not isinstance(v, str):
                v = str(v)
            d[c] = v
        out.append(d)
    return out


def _frame(records: list[tuple[Any, ...]], columns: list[str]) -> pd.DataFrame:
    # pandas.read_sql builds its frame exactly so (DataFrame.from_records, coerce_float=True)
    return pd.DataFrame.from_records(records, columns=columns, coerce_float=True)


# -- predicates mirroring the SQL of sql_sis.pull_sprg ------------------------------------------


def _le(v: str | None, bound: str) -> bool:      # SQL: col <= :bound (NULL -> not selected)
    return v is not None and v <= bound


def _gt(v: str | None, bound: str) -> bool:      # SQL: col > :bound
    return v is not None and v > bound


def _ge(v: str | None, bound: str) -> bool:
    return v is not None and v >= bound


def not_a_date(v: str | None) -> bool:
    """sql_sis.not_a_date: NOT (CAST(col AS VARCHAR) LIKE '____-__-__'); NULL -> not selected."""
    return v is not None and not (len(v) == 10 and v[4] == "-" and v[7] == "-")


def student_selected(s: dict[str, Any], scope: RunScope) -> bool:
    """sql_sis._student_filters(require_ssid=False), as the SPRG pull uses them: not excluded, in the run's
    students (an SSID is not required: the builder lists a record without one as not extracted)."""
    if s["state_excludefromreporting"] != 0:
        return False
    return not scope.students or s["student_number"] in scope.students


def enrollment_in_range(entry: str | None, exit_: str | None, start: str, end: str) -> bool:
    """(entrydate <= end OR not_a_date(entrydate)) AND (exitdate IS NULL OR exitdate > start OR
    not_a_date(exitdate))."""
    return ((_le(entry, end) or not_a_date(entry))
            and (exit_ is None or _gt(exit_, start) or not_a_date(exit_)))


def enrollment_overlaps(entry: str | None, exit_: str | None, start: str, end: str) -> bool:
    """sql_sis.enrolled_students_select: entrydate <= end AND (exitdate IS NULL OR exitdate > start)."""
    return _le(entry, end) and (exit_ is None or _gt(exit_, start))


def program_selected(p: dict[str, Any], program_codes: list[str], start: str, end: str) -> bool:
    """Program code in the set or blank; start NULL, <= end or not a date; end NULL, '', > start or not a date."""
    code = p["programcode"]
    if not (code in program_codes or code is None or code == ""):
        return False
    ps, pe = p["programstartdate"], p["programenddate"]
    if not (ps is None or _le(ps, end) or not_a_date(ps)):
        return False
    return pe is None or pe == "" or _gt(pe, start) or not_a_date(pe)


def reporting_lea(prefs: Rows) -> str:
    """sql_sis.reporting_lea: PREFS name 'districtnumber' at district level (the first such row)."""
    rows = sorted((p for p in prefs if p["name"] == "districtnumber" and p["schoolid"] == 0),
                  key=lambda p: p["id"] if p.get("id") is not None else 0)
    value = rows[0]["value"] if rows else None
    if not value or not str(value).strip():
        raise SisDataError(
            "The SIS has no district number (PREFS name 'districtnumber' at district level): "
            "enter the 7-digit Reporting LEA code on PowerSchool's District Info page."
        )
    return str(value).strip()


def reportable_schools(schools: Rows) -> pd.DataFrame:
    """sql_sis.reportable_schools, same post-processing of the CDS code."""
    recs = [(s["school_number"], s["alternate_school_number"], s["subdistrict"]) for s in schools
            if s["state_excludefromreporting"] == 0]
    df = _frame(recs, ["school_number", "school_code", "subdistrict"])
    df["school_code"] = df["school_code"].astype("object").where(df["school_code"].notna(), None)
    df["school_code"] = df["school_code"].map(lambda v: str(v).strip() if v is not None else None)
    return df


def assemble_sprg_pull(tables: dict[str, Rows], scope: RunScope, program_codes: list[str]) -> SprgPull:
    """The SprgPull that sql_sis.pull_sprg would return for a database holding these rows."""
    t = {name: typed(tables.get(name, []), cols) for name, cols in SPRG_TABLE_COLUMNS.items()}
    start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
    lea = reporting_lea(t["prefs"])
    all_schools = reportable_schools(t["schools"])
    schools = narrow_schools(all_schools, scope)
    school_numbers = {int(n) for n in all_schools["school_number"]}
    scoped_numbers = {int(n) for n in schools["school_number"]}

    calendar = _frame([(c["schoolid"], c["date_value"]) for c in t["calendar_day"]
                       if c["insession"] == 1 and c["schoolid"] in school_numbers], ["schoolid", "date_value"])

    # sql_sis: students.dcid IN (candidate programs' studentsdcid)
    candidates = {p["studentsdcid"] for p in t["s_ca_stu_calpadsprograms_c"]
                  if p["schoolid"] in scoped_numbers and program_selected(p, program_codes, start, end)}
    selected = {s["id"]: s for s in t["students"] if student_selected(s, scope) and s["dcid"] in candidates}
    by_dcid = {s["dcid"]: s for s in selected.values()}
    enr = [(s["id"], s["schoolid"], s["entrydate"], s["exitdate"]) for s in selected.values()
           if s["schoolid"] in school_numbers and enrollment_in_range(s["entrydate"], s["exitdate"], start, end)]
    enr += [(r["studentid"], r["schoolid"], r["entrydate"], r["exitdate"]) for r in t["reenrollments"]
            if r["studentid"] in selected and r["state_excludefromreporting"] == 0
            and r["schoolid"] in school_numbers and enrollment_in_range(r["entrydate"], r["exitdate"], start, end)]
    enrollments = _frame(enr, ENROLLMENT_OUT)

    stu_x = {x["studentsdcid"]: x for x in t["s_ca_stu_x"]}
    students = _frame([
        (s["id"], s["dcid"], s["student_number"], s["state_studentnumber"], s["first_name"], s["last_name"],
         s["dob"], s["gender"], *((stu_x[s["dcid"]][k] for k in ("legalfirstname", "legallastname", "legalgender"))
                                  if s["dcid"] in stu_x else (None, None, None)))
        for s in selected.values()], STUDENT_OUT)

    progs = [(by_dcid[p["studentsdcid"]]["id"], p["id"], p["schoolid"], *(p[c] for c in PROGRAM_OUT[3:]))
             for p in t["s_ca_stu_calpadsprograms_c"]
             if p["studentsdcid"] in by_dcid and p["schoolid"] in scoped_numbers
             and program_selected(p, program_codes, start, end)]
    programs = _frame(progs, PROGRAM_OUT)

    # sql_sis.enrolled_students_select (UNION: distinct), over every student, candidate or not
    listed = {s["id"]: s for s in t["students"] if student_selected(s, scope)}
    enrolled = {s["student_number"] for s in listed.values() if s["schoolid"] in scoped_numbers
                and enrollment_overlaps(s["entrydate"], s["exitdate"], start, end)}
    enrolled |= {listed[r["studentid"]]["student_number"] for r in t["reenrollments"]
                 if r["studentid"] in listed and r["state_excludefromreporting"] == 0
                 and r["schoolid"] in scoped_numbers and enrollment_overlaps(r["entrydate"], r["exitdate"], start, end)}
    enrolled_students = _frame([(n,) for n in sorted(enrolled)], ["student_number"])

    services = pd.DataFrame(columns=["student_id", "schoolid", "servicecode", "unreadable_date"])
    if "122" in program_codes:
        # SELECT DISTINCT student_id, schoolid, servicecode, not_a_date(servicedate) ... WHERE servicedate
        # BETWEEN start AND end OR not_a_date(servicedate)
        seen = dict.fromkeys(
            (by_dcid[v["studentsdcid"]]["id"], v["schoolid"], v["servicecode"], int(not_a_date(v["servicedate"])))
            for v in t["s_ca_calpads_studentservices_c"]
            if v["studentsdcid"] in by_dcid and ((_ge(v["servicedate"], start) and _le(v["servicedate"], end))
                                                 or not_a_date(v["servicedate"])))
        services = _frame(list(seen), ["student_id", "schoolid", "servicecode", "unreadable_date"])
    return SprgPull(lea, all_schools, schools, calendar, enrollments, students, programs, services, enrolled_students)


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """A frame sorted on all its columns (None/NaN last), index reset: for comparing pulls."""
    if df.empty:
        return df.reset_index(drop=True)
    key = df.astype(object).where(df.notna(), None).map(lambda v: "" if v is None else f"{type(v).__name__}:{v}")
    order = key.sort_values(list(key.columns), kind="mergesort").index
    return df.loc[order].reset_index(drop=True)
