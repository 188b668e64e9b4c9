"""STAS builder: one record per student per school per academic year (replacement processing).

- Enrollments: PowerSchool's enrollment selection (calpads.extracts.enrollment, the same as SENR), at a school
  in the run's scope, grades TK-12, never School of Attendance 0000001/0000002 (STAS0651). Only primary
  (10) and short-term (30) enrollments have a STAS record (CALPADS Student Details STAS page): a secondary
  (20) or non-ADA (50) enrollment (ENROLLMENTSTATUS) is listed in the report's not_extracted.csv instead;
  a blank status (or a SIS without the column) counts as primary.
- Days are counted through the earlier of the report end date and the run's date (``counted_through``):
  a run before the school year ends never counts a future day as expected or attended. The manifest
  (``counted_through``) and the report say through which date.
- 13.15 Expected Attendance Days: in-session days (CALENDAR_DAY) of the student's enrollments at
  the school, inside the report range up to that date, overlapping enrollments counted once.
- 13.17-13.22: days per ATTENDANCE_CODE.CALPADS_CATEGORY, counted by the SIS database
  (calpads.sources.sql_attendance): no attendance row ever reaches pandas.
- 13.16 Days Attended In-Person = 13.15 - (13.17 + ... + 13.22): it excludes in-school suspension
  and independent study (STAS0318).
- 13.24 Attendance Recovery Days from the AR sessions afterschool_sync imported and staged
  (``staged_afterschool``, ``attendance_recovery_days``; AR rows it held back are listed), worked out over
  the whole LEA whatever schools the run covers (``lea_wide_recovery``); blank only when afterschool_sync
  never imported anything.
Settings: ``stas.yaml`` beside this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml

from calpads.afterschool.store import Staged
from calpads.extracts import not_extracted as ne
from calpads.extracts.common import sort_records
from calpads.extracts.enrollment import in_session_counts, merged_intervals, selected_enrollments
from calpads.extracts.student_fields import finish, student_fields
from calpads.layouts import load_layout
from calpads.run_scope import RunScope
from calpads.sources.sql_enrollment import EnrollmentPull
from calpads.staging.contract import ATTENDANCE_CATEGORY_DAYS, ENROLLMENT_TABLES
from calpads.staging.protocols import BuildContext, Built
from calpads.staging.store import StagedTables

log = logging.getLogger(__name__)

COUNT_COLUMNS = ["days_absent_oss", "days_iss", "days_absent_excused", "days_absent_unexcused", "days_is_non_ada",
                 "days_is_ada"]
NOT_EXTRACTED_COLUMNS = ["local_record_id", "local_student_id", "school_of_attendance", "reason"]
TABLES = (*ENROLLMENT_TABLES, ATTENDANCE_CATEGORY_DAYS)   # the staged tables STAS reads
NOT_STAS_STATUSES = {"20": "a secondary enrollment (status 20)", "50": "a non-ADA enrollment (status 50)"}


@cache
def settings() -> dict[str, Any]:
    return yaml.safe_load(resources.files(__package__).joinpath("stas.yaml").read_text())


@dataclass
class StasInputs:
    pull: EnrollmentPull
    counts: pd.DataFrame             # student_id, schoolid, COUNT_COLUMNS (staged attendance_category_days)
    ar_sessions: pd.DataFrame | None  # student_number, session_day, minutes (program AR); None = no export


def build(staged: StagedTables, scope: RunScope, context: BuildContext) -> Built:
    """Registry entry point (layout key ``builder``): STAS from the staged tables; ``context.store_engine``:
    calpads_store, where afterschool_sync staged the platform's AR sessions (13.24)."""
    from calpads.extracts.selection import student_status

    inputs = stas_inputs(staged, scope)
    last_school_day = pd.to_datetime(inputs.pull.calendar["date_value"], errors="coerce").max()
    notes = [counting_note(scope, None if pd.isna(last_school_day) else last_school_day.date())]
    log.info(notes[0])
    if {"STUDENTS.ENROLLMENTSTATUS", "REENROLLMENTS.ENROLLMENTSTATUS"} & set(inputs.pull.missing_codes):
        notes.append("The SIS has no ENROLLMENTSTATUS column on STUDENTS or REENROLLMENTS: every enrollment is "
                     "counted as primary, so a secondary enrollment would get a STAS record.")
        log.warning(notes[-1])
    imported = staged_afterschool(context.store_engine, inputs.pull.lea, scope)
    inputs.ar_sessions = None if imported is None else ar_sessions(imported, scope)
    if inputs.ar_sessions is not None and (scope.schools or scope.subdistricts):
        records, not_extracted = lea_wide_recovery(staged, scope, inputs)
    else:
        records, not_extracted = build_stas(inputs, scope)
    if imported is not None:   # AR rows the import held back: 13.24 lacks them until they are corrected
        not_extracted = pd.concat([not_extracted, imported.held_report(
            "attendance", "attendance recovery session(s)", "not counted in 13.24 until corrected in the afterschool "
            "platform", ar=True)], ignore_index=True)
    not_extracted = ne.explain_unknown_students(lambda numbers: student_status(staged, numbers), not_extracted)
    return Built(records, not_extracted, inputs.pull.lea,
                 [str(c) for c in inputs.pull.scoped_schools["school_code"].dropna()],
                 notes=notes, facts={"counted_through": counted_through(scope).isoformat()})


def counted_through(scope: RunScope) -> date:
    """The last day STAS counts: the report end date, or the run's date when that is earlier (the run's
    logical date, so a re-run of the same run counts the same days)."""
    return min(scope.end_date, scope.today)


def counting_note(scope: RunScope, last_school_day: date | None = None) -> str:
    """The report's sentence about the counting date; last_school_day: the schools' last in-session day."""
    through = counted_through(scope)
    if through >= scope.end_date:
        return f"Days are counted through {through.isoformat()} (the report end date)."
    text = (f"Days are counted through {through.isoformat()} (the run's date), not through the report end date "
            f"{scope.end_date.isoformat()}")
    if last_school_day is not None and through >= last_school_day:
        return f"{text}; the last school day, {last_school_day.isoformat()}, is already counted."
    return (f"{text}: later days have not happened yet, so they are neither expected nor attended. Run STAS again "
            "after the last day of school for the whole year.")


def staged_afterschool(store_engine: sa.Engine | None, lea: str, scope: RunScope) -> Staged | None:
    """The year's afterschool export as afterschool_sync staged it (calpads.afterschool.store.Staged). None (13.24
    left blank, logged) only when the store holds no afterschool import for the LEA at all; AfterschoolNotImported
    when it holds earlier years but not this one (afterschool_sync has not run for it)."""
    from calpads.afterschool.store import AfterschoolNotImported, AfterschoolStore

    if store_engine is None:
        log.warning("STAS 13.24 Attendance Recovery Days left blank: this run was given no calpads_store")
        return None
    store = AfterschoolStore(store_engine)
    try:
        return store.staged(lea, scope.academic_year, needed_by="STAS 13.24 Attendance Recovery Days")
    except AfterschoolNotImported:
        if store.last_import(lea) is not None:
            raise
        log.warning("STAS 13.24 Attendance Recovery Days left blank: afterschool_sync has never imported an "
                    "afterschool export for Reporting LEA %s (no attendance recovery data)", lea)
        return None


def ar_sessions(staged: Staged, scope: RunScope) -> pd.DataFrame:
    """The staged AR sessions inside the run's dates: student_number, session_day, minutes."""
    s = staged.sessions[staged.sessions["program"] == settings()["attendance_recovery"]["program"]]
    day = pd.to_datetime(s["session_date"], format="%Y-%m-%d")
    s = s.assign(session_day=day, minutes=s["minutes"].astype("int64"))
    inside = (day >= pd.Timestamp(scope.start_date)) & (day <= pd.Timestamp(scope.end_date))
    return s[inside][["student_number", "session_day", "minutes"]].reset_index(drop=True)


def lea_wide_recovery(staged: StagedTables, scope: RunScope, inputs: StasInputs,
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A run narrowed to some schools or sub-districts: 13.24 of each record as the district-wide run gives it.
    Earned days belong to the school of the enrollment on the day and the 10-day cap is per student across the
    LEA (STAS0740E1), so they are worked out over every school of the LEA and then copied to the run's records."""

    ar = inputs.ar_sessions
    inputs.ar_sessions = None
    records, not_extracted = build_stas(inputs, scope)
    lea_scope = replace(scope, schools=(), subdistricts=())
    lea_inputs = stas_inputs(staged, lea_scope)   # the same staged tables: the SIS is read once
    lea_inputs.ar_sessions = ar
    lea_records, lea_not_extracted = build_stas(lea_inputs, lea_scope)
    by_record = dict(zip(lea_records["local_record_id"], lea_records["attendance_recovery_days"], strict=True))
    records["attendance_recovery_days"] = records["local_record_id"].map(by_record)
    ar_rows = lea_not_extracted[lea_not_extracted["local_record_id"].astype(str).str.startswith("afterschool.")]
    return records, pd.concat([not_extracted, ar_rows], ignore_index=True)


def counting_scope(scope: RunScope) -> RunScope:
    """The run's scope ending on the counting date: no day after the run's date is counted."""
    return replace(scope, end_date=counted_through(scope))


def stas_inputs(staged: StagedTables, scope: RunScope) -> StasInputs:
    """The enrollments of the counting scope and the staged day counts (every reportable school's)."""
    from calpads.extracts.selection import enrollment_pull

    pull = enrollment_pull(staged, counting_scope(scope))
    return StasInputs(pull, staged.frame(ATTENDANCE_CATEGORY_DAYS), None)


def build_stas(inputs: StasInputs, scope: RunScope) -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg = settings()
    pull = inputs.pull
    start, end = pd.Timestamp(scope.start_date), pd.Timestamp(counted_through(scope))
    schools = pull.scoped_schools[~pull.scoped_schools["school_code"].isin(cfg["never_reported_schools"])]
    enr = selected_enrollments(pull.enrollments[ne.readable_dates(pull.enrollments)], pull.calendar, start, end)
    enr = enr[enr["schoolid"].isin(schools["school_number"])]
    enr, not_stas = primary_or_short_term(enr, pull)
    grade = pd.to_numeric(enr["grade_level"], errors="coerce")
    enr = enr[grade.isna() | grade.between(cfg["grades"]["min"], cfg["grades"]["max"])]
    enr = enr.assign(first=enr["entry"].clip(lower=start), last=enr["last_day"].fillna(end).clip(upper=end))
    enr = enr[enr["first"] <= enr["last"]]

    spans = merged_intervals(enr, ["student_id", "schoolid"], "first", "last")
    spans["days"] = in_session_counts(pull.calendar, spans["schoolid"], spans["first"], spans["last"])
    per = spans.groupby(["student_id", "schoolid"], as_index=False).agg(expected=("days", "sum"),
                                                                        first=("first", "min"))
    per = per[per["expected"] > 0]
    counts = inputs.counts.astype({"student_id": "int64", "schoolid": "int64"})
    per = per.merge(counts, on=["student_id", "schoolid"], how="left")
    for c in COUNT_COLUMNS:
        per[c] = per[c].fillna(0).astype("int64") if c in per else 0
    per["attended"] = per["expected"] - per[COUNT_COLUMNS].sum(axis=1)

    not_extracted = [pd.DataFrame(columns=NOT_EXTRACTED_COLUMNS), not_stas]
    ar = None
    if inputs.ar_sessions is not None:
        ar, unmatched = attendance_recovery_days(inputs.ar_sessions, per, enr, pull.students)
        not_extracted.append(unmatched)

    per = per.merge(schools[["school_number", "school_code"]], left_on="schoolid", right_on="school_number")
    per = per.merge(student_fields(pull.students), on="student_id", how="inner")
    if ar is not None:
        per = per.merge(ar, on=["student_id", "schoolid"], how="left")
        per["ar_days"] = per["ar_days"].fillna(0).astype("int64").astype(str)
    else:
        per["ar_days"] = None

    def text(col: str) -> pd.Series:
        return per[col].astype("int64").astype(str)

    layout = load_layout("STAS")
    records = pd.DataFrame({
        "record_type": "STAS",
        "transaction_type": None,
        "local_record_id": stas_record_id(per),
        "reporting_lea": pull.lea,
        "school_of_attendance": per["school_code"],
        "academic_year_id": scope.academic_year,
        **{c: per[c] for c in ("ssid", "local_student_id", "legal_first_name", "legal_last_name", "birth_date",
                               "gender_code")},
        "exemption_indicator": "N",
        "hourly_attendance_indicator": "N",
        "expected_attendance_days": text("expected"),
        "days_attended_in_person": text("attended"),
        **{c: text(c) for c in COUNT_COLUMNS},
        "period_attendance_indicator": "N",
        "attendance_recovery_days": per["ar_days"],
        "ctx_student_id": per["student_id"].astype(str),
    }, index=per.index)
    records = sort_records(finish(records, layout.columns), layout)
    # Every student-school left out is listed with its reason (calpads.extracts.not_extracted).
    records, no_ssid = ne.without_blank_ssid(records)
    not_extracted += [no_ssid, ne.enrollment_rows(pull, start, end, stas_record_id)]
    return records, pd.concat(not_extracted, ignore_index=True)


def primary_or_short_term(enr: pd.DataFrame, pull: EnrollmentPull) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The enrollments that get a STAS record (status 10, 30 or blank), and a not-extracted row for each
    secondary / non-ADA one (a code outside the code set stays: the SENR gate reports it)."""
    if "enrollmentstatus" not in enr:
        return enr, pd.DataFrame(columns=NOT_EXTRACTED_COLUMNS)
    status = enr["enrollmentstatus"].astype("string").str.strip()
    other = status.isin(list(NOT_STAS_STATUSES)).fillna(False).to_numpy(dtype=bool)
    out = enr[other]
    numbers = pull.students.drop_duplicates("student_id").set_index("student_id")["student_number"]
    codes = pull.scoped_schools.drop_duplicates("school_number").set_index("school_number")["school_code"]
    reasons = pd.DataFrame({
        "local_record_id": stas_record_id(out),
        "local_student_id": out["student_id"].map(numbers),
        "school_of_attendance": out["schoolid"].map(codes),
        "reason": [f"{NOT_STAS_STATUSES[v]}: STAS is reported for primary and short-term enrollments only"
                   for v in status[other]],
    }, columns=NOT_EXTRACTED_COLUMNS)
    return enr[~other], reasons.drop_duplicates("local_record_id").reset_index(drop=True)


def stas_record_id(rows: pd.DataFrame) -> pd.Series:
    """Local Record ID of a student's record at a school: STUDENTS.ID.school number."""
    return (rows["student_id"].astype(str) + "." + rows["schoolid"].astype(str)).astype(object)


def minimum_day_minutes(grade: pd.Series) -> pd.Series:
    """The grade's minimum school day (stas.yaml); grades outside every band get the largest minimum."""
    bands = settings()["attendance_recovery"]["minimum_day_minutes"]
    out = pd.Series(max(b["minutes"] for b in bands), index=grade.index, dtype="int64")
    g = pd.to_numeric(grade, errors="coerce")
    for b in bands:
        lo, hi = b["grades"]
        out[g.between(lo, hi)] = b["minutes"]
    return out


def attendance_recovery_days(sessions: pd.DataFrame, per: pd.DataFrame, enr: pd.DataFrame,
                             students: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """13.24 per (student_id, schoolid) and the AR rows that could not be attached (for the report).

    - Minutes count in whole increments (stas.yaml ``increment_minutes``, hourly) per calendar day, at most
      the grade's minimum school day per calendar day (so one calendar day never earns more than one day),
      and accrue across sessions and days; a day is earned each time the accrued minutes pass a multiple
      of the minimum (grade of the student's latest enrollment). Same model as
      calpads.afterschool.recovery.recovered_days (tests/unit/test_stas_builder.py checks they agree).
    - Each earned day belongs to the school of the student's enrollment on that date (the latest
      enrollment that started on or before it; the first one for a day before any enrollment).
    - Capped per school at that school's recoverable absences (13.19 + 13.20; suspension days are not
      recoverable), then per student at 10 across the LEA, schools in enrollment order (STAS0740E1).
    """
    cfg = settings()["attendance_recovery"]
    max_days = int(cfg["max_days"])
    ids = students[["student_id", "student_number"]].astype({"student_id": "int64"})
    ids = ids.assign(student_number=ids["student_number"].astype(str))
    s = sessions[["student_number", "session_day", "minutes"]].merge(ids, on="student_number", how="left")
    unknown = s[s["student_id"].isna()]
    s = s[s["student_id"].notna()].astype({"student_id": "int64"})
    reported = set(per["student_id"])
    no_record = s[~s["student_id"].isin(reported)]
    s = s[s["student_id"].isin(reported)]
    unmatched = pd.concat([
        ne.afterschool_rows(unknown, "attendance recovery sessions for a student the SIS does not know"),
        ne.afterschool_rows(no_record, "attendance recovery sessions for a student with no STAS record in the range"),
    ], ignore_index=True)
    empty = pd.DataFrame({"student_id": pd.Series(dtype="int64"), "schoolid": pd.Series(dtype="int64"),
                          "ar_days": pd.Series(dtype="int64")})
    if s.empty:
        return empty, unmatched

    daily = s.groupby(["student_id", "session_day"], as_index=False)["minutes"].sum()
    latest = enr.sort_values("entry").groupby("student_id").tail(1).set_index("student_id")["grade_level"]
    minimum = minimum_day_minutes(daily["student_id"].map(latest)).to_numpy()
    step = int(cfg.get("increment_minutes", 60))
    # Whole increments per calendar day, never more than one minimum day on one calendar day.
    daily["credited"] = np.minimum((daily["minutes"].to_numpy() // step) * step, minimum)
    daily["minimum"] = minimum
    daily = daily.sort_values(["student_id", "session_day"], kind="stable").reset_index(drop=True)
    cum = daily.groupby("student_id")["credited"].cumsum()
    earned = (cum // daily["minimum"]) > ((cum - daily["credited"]) // daily["minimum"])
    days = daily[earned][["student_id", "session_day"]].sort_values("session_day")

    spans = enr[["student_id", "schoolid", "entry"]].sort_values("entry")
    spans = spans[spans["student_id"].isin(days["student_id"])]
    back = pd.merge_asof(days, spans, left_on="session_day", right_on="entry", by="student_id", direction="backward")
    fwd = pd.merge_asof(days, spans, left_on="session_day", right_on="entry", by="student_id", direction="forward")
    days = days.assign(schoolid=back["schoolid"].fillna(fwd["schoolid"]).astype("int64").to_numpy())
    at_school = days.groupby(["student_id", "schoolid"], as_index=False).size().rename(columns={"size": "earned"})
    at_school = at_school.merge(per[["student_id", "schoolid", "first", *cfg["recoverable"]]],
                                on=["student_id", "schoolid"], how="inner")
    recoverable = at_school[cfg["recoverable"]].sum(axis=1)
    at_school["capped"] = np.minimum(at_school["earned"], recoverable)
    at_school = at_school.sort_values(["student_id", "first", "schoolid"], kind="stable")
    before = at_school.groupby("student_id")["capped"].cumsum() - at_school["capped"]
    at_school["ar_days"] = np.clip(max_days - before, 0, None).combine(at_school["capped"], min)
    return at_school[["student_id", "schoolid", "ar_days"]].astype("int64"), unmatched
