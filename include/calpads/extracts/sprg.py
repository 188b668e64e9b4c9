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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from calpads.extracts import not_extracted as ne
from calpads.extracts.common import blank_to_none, ccyymmdd, program_set, sort_order, to_datetime
from calpads.extracts.enrollment import enrollment_last_days, in_report_range  # shared with SENR/STAS
from calpads.layouts import Layout, load_layout
from calpads.run_scope import RunScope
from calpads.sources.sql_sis import SprgPull
from calpads.staging.contract import ENROLLMENT_TABLES, PROGRAMS, SERVICES
from calpads.staging.protocols import BuildContext, Built
from calpads.staging.store import SpillFile, StagedTables

TABLES = (*ENROLLMENT_TABLES, PROGRAMS, SERVICES)   # the staged tables SPRG reads
TITLE_I = "122"
SPECIAL_ED = "144"

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
    from calpads.extracts.selection import sprg_pull

    layout = load_layout("SPRG")
    codes = program_set(layout, scope)
    program_ids = staged.table(PROGRAMS, ["id"])["id"] if staged.has(PROGRAMS) else pa.chunked_array([], pa.int64())
    groups_ok = program_ids.null_count == 0 and pc.count_distinct(program_ids).as_py() == len(program_ids)
    per_group = STUDENTS_PER_GROUP if groups_ok else sys.maxsize
    ne_groups: list[list[pd.DataFrame]] = []
    enrolled: set[str] | None = set()
    lea, schools = "", []
    # Each group's records go to a spill file of the run's staging folder as they are built, and are read back
    # once the groups (and the staged tables they hold) are gone: the two never share the memory.
    spill = SpillFile(staged.folder / ".sprg_records.arrow")
    try:
        for group in staged.student_groups(TABLES, per_group):
            pulled = sprg_pull(group, scope, codes)
            records, ne_parts = _unsorted(pulled, scope)
            spill.write(records)
            ne_groups.append(ne_parts)
            lea, schools = pulled.lea, [str(c) for c in pulled.scoped_schools["school_code"].dropna()]
            if pulled.enrolled_students is None or enrolled is None:
                enrolled = None
            else:
                enrolled.update(str(n) for n in pulled.enrolled_students["student_number"].dropna())
            del pulled, records, group
        records = _sorted([spill.read()], layout)
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
    return Built(records, not_extracted, lea, schools, enrolled_students=None if enrolled is None else sorted(enrolled))


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
    the table that pandas' ``to_parquet`` of the records as an object frame wrote. Sorted a column at a time,
    each group column let go once sorted: the records are held about once, not twice."""
    names = groups[0].column_names
    columns: list[pa.ChunkedArray | None] = [
        pa.chunked_array([chunk for g in groups for chunk in g.column(i).chunks], groups[0].field(i).type)
        for i in range(len(names))]
    groups.clear()
    keys = list(layout.sort_by)
    order = sort_order({k: columns[names.index(k)] for k in keys}, keys)
    fields, arrays = [], []
    for i, name in enumerate(names):
        col, columns[i] = columns[i], None
        if col.null_count == len(col):
            fields.append(pa.field(name, pa.null()))
            arrays.append(pa.nulls(len(col)))
        else:
            fields.append(pa.field(name, pa.large_string()))
            arrays.append(pc.cast(col.combine_chunks().take(order), pa.large_string()))
        del col
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _not_extracted_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True).drop(columns="_program_id", errors="ignore")


def _unsorted(pull: SprgPull, scope: RunScope) -> tuple[pa.Table, list[pd.DataFrame]]:
    """The records (unsorted, every column Arrow text) and the rows not extracted, one frame per reason in a fixed
    order, each row with its program row's ``_program_id``."""
    start, end = pd.Timestamp(scope.start_date), pd.Timestamp(scope.end_date)

    # --- Student criteria: an enrollment in the report range (SQL pre-filtered on
    # EXITDATE; the exact test needs the last in-session day). An enrollment with a
    # date that is not a date cannot be judged: its student stays selected.
    enr = pull.enrollments.copy()
    enr["entry"] = to_datetime(enr["entrydate"])
    readable = ne.readable_dates(enr)
    bad_dates = _bad_enrollment_dates(enr[~readable])
    enr = enr[readable].copy()
    enr["last_day"] = enrollment_last_days(enr, pull.calendar)
    enr = enr[in_report_range(enr["entry"], enr["last_day"], start, end)]
    enr = enr[["student_id", "schoolid", "entry", "last_day"]]
    selected = set(enr["student_id"]) | set(bad_dates["student_id"])

    students = pull.students.copy()
    students["legal_first_name"] = blank_to_none(students["legalfirstname"]).fillna(
        blank_to_none(students["first_name"]))
    students["legal_last_name"] = blank_to_none(students["legallastname"]).fillna(
        blank_to_none(students["last_name"]))
    students["gender_code"] = blank_to_none(students["legalgender"]).fillna(blank_to_none(students["gender"]))

    # --- Program criteria
    progs = pull.programs.merge(students, on="student_id", how="inner")
    progs = progs.merge(pull.scoped_schools[["school_number", "school_code"]], left_on="schoolid",
                        right_on="school_number", how="inner")
    progs = progs.merge(bad_dates, on=["student_id", "schoolid"], how="left")
    for col in ("programcode", "programmembershipcode", "programstartdate", "programenddate", "ssid"):
        progs[col] = blank_to_none(progs[col])
    # object dtype: pandas' arrow-backed strings make isin/map on large id sets slow (a Python loop)
    progs["local_record_id"] = (progs["student_id"].astype(str) + "." + progs["program_id"].astype(str)).astype(object)

    # Rows left out for a data problem: listed with their reason, never dropped silently.
    not_extracted = [ne.frame(program_code=None)]
    for skip, reason in ((lambda df: ~df["student_id"].isin(selected), ne.NO_ENROLLMENT),
                         (lambda df: df["ssid"].isna(), ne.NO_SSID),
                         (lambda df: df["programcode"].isna(), ne.BLANK_PROGRAM_CODE),
                         (lambda df: df["programmembershipcode"].isna(), ne.BLANK_MEMBERSHIP_CODE),
                         (lambda df: df["programstartdate"].isna(), ne.BLANK_START_DATE)):
        out = skip(progs).to_numpy(dtype=bool)
        not_extracted.append(_not_extracted(progs[out], reason))
        progs = progs[~out]

    # Title I: one record per distinct service code with a service in the range.
    is_122 = progs["programcode"] == TITLE_I
    services = pull.services.copy()
    services["servicecode"] = blank_to_none(services["servicecode"])
    unreadable = (services["unreadable_date"] == 1).to_numpy(dtype=bool) if "unreadable_date" in services else \
        np.zeros(len(services), dtype=bool)
    t1 = progs[is_122].merge(services[~unreadable], on=["student_id", "schoolid"], how="inner")
    blank_service = t1["servicecode"].isna()
    not_extracted.append(_not_extracted(t1[blank_service], ne.BLANK_SERVICE_CODE))
    t1 = t1[~blank_service].drop_duplicates(["program_id", "servicecode"])
    t1["local_record_id"] = (t1["local_record_id"] + "." + t1["servicecode"]).astype(object)
    # A service whose date is not a date cannot be placed in the range: its code's record is listed, unless a
    # readable service in the range gives that record anyway.
    tb = progs[is_122].merge(services[unreadable].dropna(subset=["servicecode"]), on=["student_id", "schoolid"])
    tb = tb.assign(local_record_id=(tb["local_record_id"] + "." + tb["servicecode"]).astype(object))
    tb = tb[~tb["local_record_id"].isin(set(t1["local_record_id"]))].drop_duplicates("local_record_id")
    not_extracted.append(_not_extracted(tb, ne.BAD_SERVICE_DATE))
    others = progs[~is_122].assign(servicecode=None)
    progs = pd.concat([others, t1], ignore_index=True)

    # --- End date (16): own end date, else the enrollment's last day when it
    # ended inside the range; never for 144 without a Special Education exit code.
    progs["start_dt"] = to_datetime(progs["programstartdate"])
    # Each record's Local Record ID as an integer key (equal IDs, equal keys): the joins and lookups below on it.
    progs["_rk"] = pd.factorize(progs["local_record_id"])[0]
    rk = progs["_rk"]
    at_school = progs[["_rk", "student_id", "schoolid", "start_dt"]].merge(
        enr, on=["student_id", "schoolid"], how="inner")
    relevant = at_school[at_school["last_day"].isna() | (at_school["last_day"] >= at_school["start_dt"])]
    latest = relevant.sort_values("entry").drop_duplicates("_rk", keep="last").set_index("_rk")
    latest_any = at_school.sort_values("entry").drop_duplicates("_rk", keep="last").set_index("_rk")
    last_day = _lookup(rk, latest["last_day"])
    exit_for_rule = last_day.where(rk.isin(latest.index), _lookup(rk, latest_any["last_day"]))
    derived = last_day.where((last_day >= start) & (last_day <= end))
    own_end = progs["programenddate"]
    end_iso = own_end.where(own_end.notna(), derived.dt.strftime("%Y-%m-%d").where(derived.notna(), None))
    no_sped_exit = (progs["programcode"] == SPECIAL_ED) & blank_to_none(progs["spedexitcode"]).isna()
    end_iso = end_iso.where(~no_sped_exit, None)
    progs["end_iso"] = end_iso

    # Coverage for the cross-file rule: an enrollment at the school from the
    # membership start to its end (blank = report end), clipped to this year's
    # part of the range: the SIS holds only this year's enrollments, so a
    # membership that began in an earlier year is checked from the later of the
    # report start and the school's first in-session day.
    end_dt = to_datetime(progs["end_iso"])
    first_day = _first_school_day(pull.calendar, start)
    floor = _lookup(progs["schoolid"], first_day).fillna(start).clip(lower=start)
    cov = progs[["_rk", "student_id", "schoolid"]].assign(
        rs=progs["start_dt"].where(progs["start_dt"] > floor, floor), re=end_dt.fillna(end).clip(upper=end)
    ).merge(enr, on=["student_id", "schoolid"], how="inner")
    covered = cov[(cov["entry"] <= cov["rs"]) & (cov["last_day"].isna() | (cov["last_day"] >= cov["re"]))]

    code = progs["programcode"]
    dsea = blank_to_none(progs["distspedaccountability"])
    columns = {
        "record_type": "SPRG",
        "transaction_type": None,
        "local_record_id": progs["local_record_id"],
        "reporting_lea": pull.lea,
        "school_of_attendance": progs["school_code"],
        "academic_year_id": scope.academic_year,
        "ssid": progs["ssid"],
        "local_student_id": blank_to_none(progs["student_number"]),
        "legal_first_name": progs["legal_first_name"],
        "legal_last_name": progs["legal_last_name"],
        "birth_date": ccyymmdd(progs["dob"]),
        "gender_code": progs["gender_code"],
        "program_code": code,
        "membership_code": progs["programmembershipcode"],
        "membership_start_date": ccyymmdd(progs["programstartdate"]),
        "membership_end_date": ccyymmdd(progs["end_iso"]),
        "service_academic_year": pd.Series(scope.academic_year, index=progs.index).where(code == TITLE_I, None),
        "service_code": progs["servicecode"],
        **{col: blank_to_none(progs[src]) for col, src in PROGRAM_FIELDS.items()},
        "dsea": dsea.where(~((code == SPECIAL_ED) & dsea.isna()), pull.lea),
        "ctx_student_id": progs["student_id"].astype(str),
        "ctx_program_id": progs["program_id"].astype(str),
        "ctx_preferred_gender": blank_to_none(progs["gender"]),
        "ctx_legal_gender": blank_to_none(progs["legalgender"]),
        "ctx_sped_exit_code": blank_to_none(progs["spedexitcode"]),
        "ctx_enrolled_at_school": _yes_no(rk.isin(at_school["_rk"])),
        "ctx_enrollment_covers_range": _yes_no(rk.isin(covered["_rk"])),
        "ctx_enrollment_exit_date": exit_for_rule.dt.strftime("%Y%m%d").where(exit_for_rule.notna(), None),
        "ctx_primary_residence_category": None,
        "ctx_enrollment_bad_date": progs["ctx_enrollment_bad_date"],
    }
    layout = load_layout("SPRG")
    names = [*layout.columns, *[c for c in columns if c.startswith("ctx_")]]
    records = pa.table({name: _text(columns[name], len(progs)) for name in names})
    return records, not_extracted


def _text(values: pd.Series | str | None, rows: int) -> pa.Array:
    """A record column as Arrow text: a Series' values (null for None/NaN) or one value (None: null) on every row."""
    if values is None:
        return pa.nulls(rows, pa.string())
    if isinstance(values, str):
        return pa.array(np.full(rows, values, dtype=object), pa.string())
    return pa.array(values, pa.string(), from_pandas=True)


def _yes_no(flags: pd.Series) -> np.ndarray:
    return np.where(flags.to_numpy(dtype=bool), "Y", "N").astype(object)


def _lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """keys.map(values) that keeps a datetime dtype even when values is empty."""
    out = keys.map(values) if len(values) else pd.Series(pd.NaT, index=keys.index)
    return pd.to_datetime(out)


def _first_school_day(calendar: pd.DataFrame, start: pd.Timestamp) -> pd.Series:
    """Each school's first in-session day on or after the report start."""
    days = pd.DataFrame({"schoolid": calendar["schoolid"], "day": to_datetime(calendar["date_value"])})
    days = days[days["day"] >= start]
    return days.groupby("schoolid")["day"].min()


def _not_extracted(rows: pd.DataFrame, reason: str) -> pd.DataFrame:
    named = rows.rename(columns={"student_number": "local_student_id", "school_code": "school_of_attendance"})
    return ne.frame(named, reason, program_code=rows["programcode"], _program_id=rows["program_id"])


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

