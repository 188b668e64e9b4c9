"""SPRG builder: every selection criterion and field derivation of PowerSchool's
Student Program Records extract (its "Selection Criteria" and field table) and
the project's decisions on the points it leaves open (docs/rules.md, docs/layouts.md).

Selection happens here; state business rules do not (they live in the quality
suite). Records with a blank operational key (SSID included) are not extracted,
as PowerSchool's specification says, and neither are the programs of a student with no enrollment
in the report range; both are listed in ``SprgBuild.not_extracted`` with their
reason (calpads.extracts.not_extracted) so that the run report shows them
instead of letting them vanish. A student whose enrollment has a date that is
not a date stays selected: the records at that school carry it in
``ctx_enrollment_bad_date`` and the gate holds them back (SPRG-ENROLLMENT-DATE).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from calpads.extracts import not_extracted as ne
from calpads.extracts.arrow_ops import (
    arrow_text,
    blank_to_null,
    first_of_each,
    id_text,
    inner_join,
    left_positions,
    per_value,
    per_value_dates,
)
from calpads.extracts.common import ccyymmdd, program_set, sort_order, to_datetime
from calpads.extracts.enrollment import enrollment_last_days, in_report_range  # shared with SENR/STAS
from calpads.layouts import Layout, load_layout
from calpads.run_scope import RunScope
from calpads.sources.sql_sis import SprgPull
from calpads.staging.contract import ENROLLMENT_TABLES, PROGRAMS, SERVICES
from calpads.staging.protocols import BuildContext, Built
from calpads.staging.store import SpillFile, StagedReader, StagedTables, all_distinct

TABLES = (*ENROLLMENT_TABLES, PROGRAMS, SERVICES)   # the staged tables SPRG reads
TITLE_I = "122"
SPECIAL_ED = "144"
_DOT = pa.scalar(".", pa.large_string())   # the separator of a Local Record ID's parts

PROGRAM_FIELDS = {  # layout column <- S_CA_STU_CALPADSPROGRAMS_C column, copied as stored
    "cpa_id": "partnershipacademyid",
    "migrant_id": "migrantstudentid",
    "primary_disability_code": "prmarydisabilitycode",
    "homeless_dwelling_type": "dwellingtype",
    "unaccompanied_youth": "unaccompaniedyouth",
    "runaway_youth": "runawayyouth",
}


@dataclass
class SprgBuild:
    records: pd.DataFrame        # layout columns + ctx_ columns
    not_extracted: pd.DataFrame  # local_record_id, local_student_id, school_of_attendance, reason, program_code


STUDENTS_PER_GROUP = 25_000   # the build's memory grows with a group of students, not with the district


def build(staged: StagedTables, scope: RunScope, context: BuildContext) -> Built:
    """Registry entry point: SPRG from the staged tables, built one group of students at a time (every SPRG
    record is decided by its own student's rows), then sorted as one file. The records, the rows not extracted
    (in the order of the staged program rows, reason by reason) and the enrolled students are the same as
    ``build_sprg`` over the whole staging gives."""
    layout = load_layout("SPRG")
    codes = program_set(layout, scope)
    program_ids = staged.table(PROGRAMS, ["id"])["id"] if staged.has(PROGRAMS) else pa.chunked_array([], pa.int64())
    groups_ok = all_distinct(program_ids)
    per_group = STUDENTS_PER_GROUP if groups_ok else sys.maxsize
    ne_groups: list[list[pd.DataFrame]] = []
    enrolled: list[pd.Series] | None = []
    lea, schools = "", []
    # Each group's records go to a spill file of the run's staging folder as they are built, and are read back
    # once the groups (and the staged tables they hold) are gone: the two never share the memory.
    spill = SpillFile(staged.folder / ".sprg_records.arrow")
    try:
        for built in _in_order(lambda group: _group(group, scope, codes), staged.student_groups(TABLES, per_group)):
            records, ne_parts, lea, schools, numbers = built
            spill.write(records)
            ne_groups.append(ne_parts)
            if numbers is None or enrolled is None:
                enrolled = None
            else:
                enrolled.append(numbers)
            del records, built
        # The groups' Arrow memory, freed by now, is handed back before the sort allocates its own: the pool keeps
        # freed pages per thread (about 500 MB at 500k students), which would otherwise add to the extract's peak.
        pa.default_memory_pool().release_unused()
        records = _sorted([spill.read()], layout)
        pa.default_memory_pool().release_unused()
    finally:
        spill.remove()
    if len(ne_groups) == 1:
        not_extracted = _not_extracted_frame(ne_groups[0])
    else:   # reason by reason, in the staged order of the program rows (a program's rows are in one group)
        position = pd.Index(program_ids.to_numpy())
        parts = []
        for reason_parts in zip(*ne_groups, strict=True):
            part = pd.concat(reason_parts, ignore_index=True)
            if "_program_id" in part:
                part = part.iloc[np.argsort(position.get_indexer(part["_program_id"].to_numpy()), kind="stable")]
            parts.append(part)
        not_extracted = _not_extracted_frame(parts)
    return Built(records, not_extracted, lea, schools,
                 enrolled_students=None if enrolled is None else _distinct_texts(enrolled))


GroupBuild = tuple[pa.Table, list[pd.DataFrame], str, list[str], "pd.Series | None"]


def _group(group: StagedReader, scope: RunScope, codes: list[str]) -> GroupBuild:
    """One group of students: (its records, its rows not extracted by reason, the LEA, the schools in scope,
    its enrolled students' numbers or None)."""
    from calpads.extracts.selection import sprg_pull

    pulled = sprg_pull(group, scope, codes)
    records, ne_parts = _unsorted(pulled, scope)
    schools = [str(c) for c in pulled.scoped_schools["school_code"].dropna()]
    numbers = None if pulled.enrolled_students is None else pulled.enrolled_students["student_number"]
    return records, ne_parts, pulled.lea, schools, numbers


def _in_order(work: Callable[[StagedReader], GroupBuild], groups: Iterable[StagedReader]) -> Iterator[GroupBuild]:
    """work(group) of each group, in the groups' order, two groups at a time in threads: the Arrow and numpy
    steps of one run while the other holds the GIL. At most two groups (and their results) are held at once."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sprg-group") as pool:
        pending: deque[Future[GroupBuild]] = deque()
        try:
            for group in groups:
                pending.append(pool.submit(work, group))
                del group
                if len(pending) == 2:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _distinct_texts(parts: list[pd.Series]) -> list[str]:
    """The distinct str of the values (blanks dropped), in Python's order: sorted in Arrow when they are text
    (UTF-8 byte order is code point order)."""
    try:
        texts = pa.chunked_array([pa.array(p.to_numpy(dtype=object), pa.large_string(), from_pandas=True)
                                  for p in parts], pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):   # a number that is not text
        return sorted({str(n) for p in parts for n in p.dropna()})
    distinct = pc.unique(texts.drop_null())
    return distinct.take(pc.sort_indices(distinct)).to_pylist()


def extract_sprg(engine: sa.Engine, scope: RunScope) -> pd.DataFrame:
    """Stage and build in one call, in a temporary folder (tests, the demo)."""
    from calpads.sources.sql_sis import pull_sprg

    return build_sprg(pull_sprg(engine, scope, program_set(load_layout("SPRG"), scope)), scope).records


def build_sprg(pull: SprgPull, scope: RunScope) -> SprgBuild:
    records, not_extracted = _unsorted(pull, scope)
    frame = _sorted([records], load_layout("SPRG")).to_pandas()
    return SprgBuild(frame.astype("object").where(frame.notna(), None), _not_extracted_frame(not_extracted))


def _sorted(groups: list[pa.Table], layout: Layout) -> pa.Table:
    """The records of every group (the list is emptied) as one table in the layout's sort order
    (calpads.extracts.common.sort_order), text as large_string and a column with no value at all typed null:
    the table that pandas' ``to_parquet`` of the records as an object frame wrote. Sorted a column at a time (two
    in threads), each group column let go once sorted: the records are held about once, not twice."""
    names = groups[0].column_names
    columns: list[pa.ChunkedArray | None] = [
        pa.chunked_array([chunk for g in groups for chunk in g.column(i).chunks], groups[0].field(i).type)
        for i in range(len(names))]
    groups.clear()
    keys = list(layout.sort_by)
    order = pa.array(sort_order({k: columns[names.index(k)] for k in keys}, keys))
    pa.default_memory_pool().release_unused()   # the sort keys' pages, before the sorted columns take their own

    def sorted_column(i: int) -> tuple[pa.Field, pa.Array]:
        col, columns[i] = columns[i], None
        if col.null_count == len(col):
            return pa.field(names[i], pa.null()), pa.nulls(len(col))
        return pa.field(names[i], pa.large_string()), pc.cast(col.combine_chunks().take(order), pa.large_string())

    # Two columns at a time: Arrow's take runs outside the GIL.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sprg-sort") as pool:
        fields, arrays = zip(*pool.map(sorted_column, range(len(names))), strict=True) if names else ((), ())
    return pa.Table.from_arrays(list(arrays), schema=pa.schema(list(fields)))


def _not_extracted_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True).drop(columns="_program_id", errors="ignore")


@dataclass
class _Rows:
    """Rows of the build as positions into the pull's frames: ``p`` its programs, ``s`` its students, ``k`` its
    scoped schools, ``b`` the bad enrollment dates (-1: none), ``v`` its services (-1: not a Title I service's
    record); ``lrid`` their Local Record IDs. A join or a filter moves positions, never the columns."""

    p: np.ndarray
    s: np.ndarray
    k: np.ndarray
    b: np.ndarray
    v: np.ndarray
    lrid: pa.Array

    def __len__(self) -> int:
        return len(self.p)

    def take(self, at: np.ndarray) -> _Rows:
        """The rows at these positions (or where this mask is true), in that order."""
        at = np.flatnonzero(at) if at.dtype == bool else at
        return _Rows(self.p[at], self.s[at], self.k[at], self.b[at], self.v[at], self.lrid.take(at))

    @staticmethod
    def concat(a: _Rows, b: _Rows) -> _Rows:
        return _Rows(*(np.concatenate([x, y]) for x, y in ((a.p, b.p), (a.s, b.s), (a.k, b.k), (a.b, b.b),
                                                           (a.v, b.v))), pa.concat_arrays([a.lrid, b.lrid]))


def _unsorted(pull: SprgPull, scope: RunScope) -> tuple[pa.Table, list[pd.DataFrame]]:
    """The records (unsorted, every column Arrow text) and the rows not extracted, one frame per reason in a fixed
    order, each row with its program row's ``_program_id``. Built on row positions and Arrow columns
    (calpads.extracts.arrow_ops): the same rows, values and order as pandas merges of the pull's frames give."""
    start, end = pd.Timestamp(scope.start_date), pd.Timestamp(scope.end_date)
    enr, bad_dates = _enrollments(pull, start, end)
    selected = set(enr["student_id"]) | set(bad_dates["student_id"])
    prog, stud = _program_columns(pull.programs), _student_columns(pull.students)
    p_sid, p_school = pull.programs["student_id"].to_numpy(), pull.programs["schoolid"].to_numpy()
    rows = _program_rows(pull, prog, bad_dates)

    # Rows left out for a data problem: listed with their reason, never dropped silently.
    not_extracted = [ne.frame(program_code=None)]
    for skip, reason in ((lambda r: ~pd.Series(p_sid[r.p]).isin(selected).to_numpy(dtype=bool), ne.NO_ENROLLMENT),
                         (lambda r: _nulls(stud["ssid"])[r.s], ne.NO_SSID),
                         (lambda r: _nulls(prog["code"])[r.p], ne.BLANK_PROGRAM_CODE),
                         (lambda r: _nulls(prog["membership"])[r.p], ne.BLANK_MEMBERSHIP_CODE),
                         (lambda r: _nulls(prog["start"])[r.p], ne.BLANK_START_DATE)):
        out = skip(rows)
        not_extracted.append(_not_extracted(pull, prog, rows.take(out), reason))
        rows = rows.take(~out)

    # Title I: one record per distinct service code with a service in the range.
    is_122 = _equals(prog["code"], TITLE_I)[rows.p]
    t1, t1_parts = _title_i(pull, prog, rows.take(is_122))
    not_extracted += t1_parts
    recs = _Rows.concat(rows.take(~is_122), t1)
    code = prog["code"].take(recs.p)

    # --- End date (16): own end date, else the enrollment's last day when it
    # ended inside the range; never for 144 without a Special Education exit code.
    start_dt = prog["start_dt"][recs.p]
    rk = _record_keys(recs.lrid)
    pair, at = inner_join([p_sid[recs.p], p_school[recs.p]], [enr["student_id"].to_numpy(),
                                                              enr["schoolid"].to_numpy()])
    entry, enr_last = _us(enr["entry"].to_numpy())[at], _us(enr["last_day"].to_numpy())[at]
    relevant = np.isnat(enr_last) | (enr_last >= start_dt[pair])
    has_latest, latest = _latest_last_days(rk[pair][relevant], enr["entry"].to_numpy()[at][relevant],
                                           enr_last[relevant], rk.max(initial=0) + 1)
    _, latest_any = _latest_last_days(rk[pair], enr["entry"].to_numpy()[at], enr_last, rk.max(initial=0) + 1)
    last_day = latest[rk]
    exit_for_rule = np.where(has_latest[rk], last_day, latest_any[rk])
    lo, hi = np.datetime64(scope.start_date, "us"), np.datetime64(scope.end_date, "us")
    derived = np.where((last_day >= lo) & (last_day <= hi), last_day, np.datetime64("NaT", "us"))
    end_iso = pc.coalesce(prog["end"].take(recs.p), _date_text(derived, "%Y-%m-%d"))
    no_sped_exit = _equals(code, SPECIAL_ED) & _nulls(prog["ctx_sped_exit_code"].take(recs.p))
    end_iso = pc.if_else(pa.array(no_sped_exit), pa.scalar(None, end_iso.type), end_iso)

    # Coverage for the cross-file rule: an enrollment at the school from the
    # membership start to its end (blank = report end), clipped to this year's
    # part of the range: the SIS holds only this year's enrollments, so a
    # membership that began in an earlier year is checked from the later of the
    # report start and the school's first in-session day.
    floor = _first_school_days(pull.calendar, start, p_school[recs.p])
    floor = np.maximum(np.where(np.isnat(floor), lo, floor), lo)
    rs = np.where(start_dt > floor, start_dt, floor)
    end_dt = per_value_dates(end_iso, to_datetime)
    re = np.minimum(np.where(np.isnat(end_dt), hi, end_dt), hi)
    covers = (entry <= rs[pair]) & (np.isnat(enr_last) | (enr_last >= re[pair]))

    is_122, is_144 = _equals(code, TITLE_I), _equals(code, SPECIAL_ED)
    dsea = prog["dsea"].take(recs.p)
    columns = {
        "record_type": "SPRG",
        "transaction_type": None,
        "local_record_id": recs.lrid,
        "reporting_lea": pull.lea,
        "school_of_attendance": arrow_text(pull.scoped_schools["school_code"]).take(recs.k),
        "academic_year_id": scope.academic_year,
        **{name: stud[name].take(recs.s) for name in ("ssid", "local_student_id", "legal_first_name",
                                                      "legal_last_name", "birth_date", "gender_code")},
        "program_code": code,
        "membership_code": prog["membership"].take(recs.p),
        "membership_start_date": prog["start_ccyymmdd"].take(recs.p),
        "membership_end_date": per_value(end_iso, ccyymmdd),
        "service_academic_year": _where(is_122, scope.academic_year),
        "service_code": _service_codes(pull).take(pa.array(recs.v, mask=recs.v < 0)),
        **{col: prog[col].take(recs.p) for col in PROGRAM_FIELDS},
        "dsea": pc.if_else(pa.array(is_144 & _nulls(dsea)), pull.lea, dsea),
        "ctx_student_id": prog["ctx_student_id"].take(recs.p),
        "ctx_program_id": prog["ctx_program_id"].take(recs.p),
        "ctx_preferred_gender": stud["ctx_preferred_gender"].take(recs.s),
        "ctx_legal_gender": stud["ctx_legal_gender"].take(recs.s),
        "ctx_sped_exit_code": prog["ctx_sped_exit_code"].take(recs.p),
        "ctx_enrolled_at_school": _yes_no(_any_per_key(rk[pair], rk)),
        "ctx_enrollment_covers_range": _yes_no(_any_per_key(rk[pair][covers], rk)),
        "ctx_enrollment_exit_date": _date_text(exit_for_rule, "%Y%m%d"),
        "ctx_primary_residence_category": None,
        "ctx_enrollment_bad_date": arrow_text(bad_dates["ctx_enrollment_bad_date"]).take(
            pa.array(recs.b, mask=recs.b < 0)),
    }
    layout = load_layout("SPRG")
    names = [*layout.columns, *[c for c in columns if c.startswith("ctx_")]]
    records = pa.table({name: _column(columns[name], len(recs)) for name in names})
    return records, not_extracted


def _enrollments(pull: SprgPull, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the enrollments in the report range: student_id, schoolid, entry, last_day; the bad dates of
    ``_bad_enrollment_dates``). Student criteria: an enrollment in the report range (SQL pre-filtered on
    EXITDATE; the exact test needs the last in-session day). An enrollment with a date that is not a date cannot
    be judged: its student stays selected."""
    enr = pull.enrollments.copy()
    enr["entry"] = to_datetime(enr["entrydate"])
    readable = ne.readable_dates(enr)
    bad_dates = _bad_enrollment_dates(enr[~readable])
    enr = enr[readable].copy()
    enr["last_day"] = enrollment_last_days(enr, pull.calendar)
    enr = enr[in_report_range(enr["entry"], enr["last_day"], start, end)]
    return enr[["student_id", "schoolid", "entry", "last_day"]], bad_dates


def _student_columns(students: pd.DataFrame) -> dict[str, pa.Array]:
    """The student-level record columns, one row per pulled student row (legal name and gender, else the
    preferred ones)."""
    text = {col: blank_to_null(arrow_text(students[col])) for col in
            ("legalfirstname", "first_name", "legallastname", "last_name", "legalgender", "gender", "ssid",
             "student_number")}
    return {
        "ssid": text["ssid"],
        "local_student_id": text["student_number"],
        "legal_first_name": pc.coalesce(text["legalfirstname"], text["first_name"]),
        "legal_last_name": pc.coalesce(text["legallastname"], text["last_name"]),
        "birth_date": per_value(arrow_text(students["dob"]), ccyymmdd),
        "gender_code": pc.coalesce(text["legalgender"], text["gender"]),
        "ctx_preferred_gender": text["gender"],
        "ctx_legal_gender": text["legalgender"],
    }


def _program_columns(programs: pd.DataFrame) -> dict[str, pa.Array | np.ndarray]:
    """The program-level record columns, one row per pulled program row: codes and dates stripped (blank:
    null), the start date also as CCYYMMDD and as datetime64, the ids as text."""
    out: dict[str, pa.Array | np.ndarray] = {
        name: blank_to_null(arrow_text(programs[src])) for name, src in (
            ("code", "programcode"), ("membership", "programmembershipcode"), ("start", "programstartdate"),
            ("end", "programenddate"), ("dsea", "distspedaccountability"), ("ctx_sped_exit_code", "spedexitcode"),
            *PROGRAM_FIELDS.items())}
    out["start_ccyymmdd"] = per_value(out["start"], ccyymmdd)
    out["start_dt"] = per_value_dates(out["start"], to_datetime)
    out["ctx_student_id"] = id_text(programs["student_id"])
    out["ctx_program_id"] = id_text(programs["program_id"])
    out["lrid"] = pc.binary_join_element_wise(out["ctx_student_id"], out["ctx_program_id"], _DOT)
    return out


def _program_rows(pull: SprgPull, prog: dict[str, pa.Array | np.ndarray], bad_dates: pd.DataFrame) -> _Rows:
    """The programs of pulled students at a school in scope (inner joins, pandas' order), with their bad
    enrollment date at that school (left join)."""
    p, s = inner_join([pull.programs["student_id"].to_numpy()], [pull.students["student_id"].to_numpy()])
    schools = pull.programs["schoolid"].to_numpy()
    at, k = inner_join([schools[p]], [pull.scoped_schools["school_number"].to_numpy()])
    p, s = p[at], s[at]
    b = left_positions([pull.programs["student_id"].to_numpy()[p], schools[p]],
                       [bad_dates["student_id"].to_numpy(), bad_dates["schoolid"].to_numpy()])
    return _Rows(p, s, k, b, np.full(len(p), -1, dtype=np.intp), prog["lrid"].take(p))


def _title_i(pull: SprgPull, prog: dict[str, pa.Array | np.ndarray], rows: _Rows) -> tuple[_Rows, list[pd.DataFrame]]:
    """(the Title I records: one per program row and distinct service code with a readable service in the
    range; the rows not extracted for a blank service code, then for a service date that is not a date)."""
    services = pull.services
    codes = _service_codes(pull)
    unreadable = (services["unreadable_date"] == 1).to_numpy(dtype=bool) if "unreadable_date" in services else \
        np.zeros(len(services), dtype=bool)
    keys = [pull.programs["student_id"].to_numpy()[rows.p], pull.programs["schoolid"].to_numpy()[rows.p]]

    def with_services(which: np.ndarray) -> _Rows:   # rows x their services among ``which`` (inner join)
        li, ri = inner_join(keys, [services["student_id"].to_numpy()[which], services["schoolid"].to_numpy()[which]])
        out = rows.take(li)
        out.v = which[ri]
        return out

    t1 = with_services(np.flatnonzero(~unreadable))
    blank = _nulls(codes)[t1.v]
    blank_rows = _not_extracted(pull, prog, t1.take(blank), ne.BLANK_SERVICE_CODE)
    t1 = t1.take(~blank)
    t1 = t1.take(first_of_each([pull.programs["program_id"].to_numpy()[t1.p], _codes_of(codes.take(t1.v))]))
    t1.lrid = pc.binary_join_element_wise(t1.lrid, codes.take(t1.v), _DOT)
    # A service whose date is not a date cannot be placed in the range: its code's record is listed, unless a
    # readable service in the range gives that record anyway.
    tb = with_services(np.flatnonzero(unreadable & ~_nulls(codes)))
    tb.lrid = pc.binary_join_element_wise(tb.lrid, codes.take(tb.v), _DOT)
    tb = tb.take(~pc.is_in(tb.lrid, value_set=t1.lrid, skip_nulls=False).to_numpy(zero_copy_only=False))
    tb = tb.take(first_of_each([_codes_of(tb.lrid)]))
    return t1, [blank_rows, _not_extracted(pull, prog, tb, ne.BAD_SERVICE_DATE)]


def _service_codes(pull: SprgPull) -> pa.Array:
    return blank_to_null(arrow_text(pull.services["servicecode"]))


def _record_keys(lrid: pa.Array) -> np.ndarray:
    """An integer per record, equal for equal Local Record IDs (a blank ID its own key, as pandas' factorize
    gives it -1): the joins and look-ups below are on it."""
    indices = pc.dictionary_encode(lrid).indices
    return pc.fill_null(pc.add(indices, 1), 0).to_numpy().astype(np.intp)


def _latest_last_days(keys: np.ndarray, entry: np.ndarray, last_day: np.ndarray,
                      n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """(whether a key has an enrollment, that enrollment's last day): per record key, the enrollment with the
    latest entry, ties as pandas' sort of the pairs by entry then the last of each key leave them."""
    pairs = pd.DataFrame({"_rk": keys, "entry": entry, "last_day": last_day})
    latest = pairs.sort_values("entry").drop_duplicates("_rk", keep="last")
    has = np.zeros(n_keys, dtype=bool)
    days = np.full(n_keys, np.datetime64("NaT", "us"))
    at = latest["_rk"].to_numpy()
    has[at] = True
    days[at] = latest["last_day"].to_numpy()
    return has, days


def _any_per_key(marked: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """For each record, whether its key is among ``marked`` (``keys.isin(marked)``)."""
    flags = np.zeros(keys.max(initial=0) + 1, dtype=bool)
    flags[marked] = True
    return flags[keys]


def _first_school_days(calendar: pd.DataFrame, start: pd.Timestamp, schools: np.ndarray) -> np.ndarray:
    """For each school number given, its first in-session day on or after the report start (NaT: none)."""
    days = pd.DataFrame({"schoolid": calendar["schoolid"],
                         "day": per_value_dates(arrow_text(calendar["date_value"]), to_datetime)})
    first = days[days["day"] >= start].groupby("schoolid")["day"].min()
    at = first.index.get_indexer(schools) if len(first) else np.full(len(schools), -1)
    return np.append(_us(first.to_numpy()), np.datetime64("NaT", "us"))[at]


def _date_text(days: np.ndarray, fmt: str) -> pa.Array:
    """datetime64 days as text in ``fmt`` (pandas' strftime, once per distinct day), NaT null."""
    known = ~np.isnat(days)
    distinct, where = np.unique(days[known], return_inverse=True)
    text = pd.Series(distinct).dt.strftime(fmt).to_numpy(dtype=object)
    out = np.full(len(days), None, dtype=object)
    out[known] = text[where]
    return pa.array(out, pa.large_string())


def _column(values: pa.Array | str | None, rows: int) -> pa.Array:
    """A record column as Arrow text: an array, or one value (None: null) on every row. Text, not large text,
    while the groups' records wait in the spill file: half the offsets (``_sorted`` makes it large text)."""
    if values is None:
        return pa.nulls(rows, pa.string())
    if isinstance(values, str):
        return pa.repeat(pa.scalar(values, pa.string()), rows)
    return pc.cast(values, pa.string())


def _where(flags: np.ndarray, value: str) -> pa.Array:
    return pc.if_else(pa.array(flags), pa.scalar(value, pa.large_string()), pa.scalar(None, pa.large_string()))


def _equals(values: pa.Array, text: str) -> np.ndarray:
    """values == text, a null never equal."""
    return pc.fill_null(pc.equal(values, text), False).to_numpy(zero_copy_only=False)


def _nulls(values: pa.Array) -> np.ndarray:
    return values.is_null().to_numpy(zero_copy_only=False)


def _codes_of(values: pa.Array) -> np.ndarray:
    """An integer per value, equal for equal texts (nulls alike)."""
    return pc.fill_null(pc.dictionary_encode(values).indices, -1).to_numpy()


def _us(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[us]")


def _yes_no(flags: np.ndarray) -> pa.Array:
    return pa.array(np.where(flags, "Y", "N").astype(object), pa.large_string())


def _not_extracted(pull: SprgPull, prog: dict[str, pa.Array | np.ndarray], rows: _Rows,
                   reason: str) -> pd.DataFrame:
    """The report's rows of these program rows (not_extracted.frame), as the pandas frame of the pull's columns
    gives them (their dtypes included)."""
    if not len(rows):
        return ne.frame(program_code=None, _program_id=None)
    named = pd.DataFrame({
        "local_record_id": pd.Series(rows.lrid.to_numpy(zero_copy_only=False), dtype=object),
        "local_student_id": pull.students["student_number"].iloc[rows.s].reset_index(drop=True),
        "school_of_attendance": pull.scoped_schools["school_code"].iloc[rows.k].reset_index(drop=True),
    })
    code = pd.Series(prog["code"].take(rows.p).to_numpy(zero_copy_only=False), dtype=object)
    return ne.frame(named, reason, program_code=code,
                    _program_id=pull.programs["program_id"].iloc[rows.p].reset_index(drop=True))


def _bad_enrollment_dates(rows: pd.DataFrame) -> pd.DataFrame:
    """student_id, schoolid, ctx_enrollment_bad_date: the first unreadable date of the student's enrollments at
    each school, as the coordinator finds it in the SIS (e.g. "ENTRYDATE 'not a date'")."""
    if rows.empty:
        return rows[["student_id", "schoolid"]].assign(ctx_enrollment_bad_date=pd.Series(dtype=object))
    entry_bad = to_datetime(rows["entrydate"]).isna()
    shown = rows["entrydate"].where(entry_bad, rows["exitdate"]).astype(object).map(lambda v: repr(str(v)[:20]))
    text = pd.Series("EXITDATE ", index=rows.index).where(~entry_bad, "ENTRYDATE ") + shown
    out = pd.DataFrame({"student_id": rows["student_id"], "schoolid": rows["schoolid"],
                        "ctx_enrollment_bad_date": text.astype(object)})
    return out.drop_duplicates(["student_id", "schoolid"]).reset_index(drop=True)
