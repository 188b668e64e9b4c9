"""LEAP builder: one LEA-level record per registered expanded-learning student (program 194).

From the afterschool platform's export as the afterschool_sync DAG imported and checked it (the staged
sessions and registrations in calpads_store, read through calpads.afterschool.store.AfterschoolStore.staged:
the same rows the SIS write-back and the reconciliation use), and the SIS:
- every student with an ELO-P, ASES or 21CCLC registration and an SSID in the SIS is reported, with 0 days
  if never attended (CALPADS ELP at a Glance);
- 26.07 Expanded Learning Program Days = distinct dates in the reporting year (July 1 - June 30, always the
  whole year: LEAP is LEA-level and CALPADS replaces the LEA's data, so the run's schools, sub-districts and
  dates do not narrow it) with any ELO-P / ASES / 21CCLC session; several sessions on a date count once;
  attendance recovery (AR) sessions are not expanded learning (they go to STAS 13.24);
- rows the import held back (unknown student, SSID mismatch, duplicate sessions, ...), registered students
  without an SSID, and sessions of students with no registration are listed in the run report
  (not_extracted.csv), never silently dropped.
When afterschool_sync has not imported the year's export, the run fails and says so (no empty file).
Beside the file, ``leap_days_vs_school.csv`` (run report folder) gives per student how many ELP days
were also days the student attended regular school, days the student was absent from school, and days
that were not school days (no in-session day of an enrollment of the student).
"""

from __future__ import annotations

import logging

import pandas as pd

from calpads.afterschool import EXPANDED_LEARNING_PROGRAMS
from calpads.afterschool.store import AfterschoolNotImported, Staged
from calpads.extracts import not_extracted as ne
from calpads.extracts.common import sort_records
from calpads.extracts.enrollment import selected_enrollments
from calpads.extracts.student_fields import finish, student_fields
from calpads.layouts import load_layout
from calpads.run_scope import RunScope, academic_year_bounds
from calpads.sources.sql_enrollment import EnrollmentPull
from calpads.staging.contract import ABSENT_DAYS, ENROLLMENT_TABLES
from calpads.staging.protocols import BuildContext, Built
from calpads.staging.store import StagedTables

log = logging.getLogger(__name__)

PROGRAM = "194"
REPORT = "leap_days_vs_school.csv"
NOT_EXTRACTED_COLUMNS = ["local_record_id", "local_student_id", "school_of_attendance", "reason"]
TABLES = (*ENROLLMENT_TABLES, ABSENT_DAYS)   # the staged tables LEAP reads


def reporting_year(scope: RunScope) -> RunScope:
    """The scope LEAP is built over: the LEA (no school or sub-district filter), July 1 - June 30."""
    from dataclasses import replace

    first, last = academic_year_bounds(scope.academic_year)
    if (scope.start_date, scope.end_date) != (first, last) or scope.schools or scope.subdistricts:
        log.warning("LEAP is LEA-level and counts the whole reporting year (%s..%s): the run's schools, "
                    "sub-districts and dates do not narrow it (CALPADS replaces the LEA's LEAP data)", first, last)
    return replace(scope, schools=(), subdistricts=(), start_date=first, end_date=last)


def build(staged: StagedTables, scope: RunScope, context: BuildContext) -> Built:
    """Registry entry point (layout key ``builder``): LEAP from the staged tables and the afterschool import
    afterschool_sync staged in calpads_store (``context.store_engine``)."""
    from calpads.afterschool.store import AfterschoolStore
    from calpads.extracts.selection import enrollment_pull, student_status

    lea_scope = reporting_year(scope)
    pull = enrollment_pull(staged, lea_scope, require_ssid=False)
    if context.store_engine is None:
        raise AfterschoolNotImported("The LEAP file needs the afterschool sessions afterschool_sync stages in "
                                     "calpads_store, and this run was given no calpads_store.")
    imported = AfterschoolStore(context.store_engine).staged(pull.lea, scope.academic_year, needed_by="The LEAP file")
    records, not_extracted, days = build_leap(pull, imported, lea_scope)
    not_extracted = ne.explain_unknown_students(lambda numbers: student_status(staged, numbers), not_extracted)
    absences = absent_days(staged.frame(ABSENT_DAYS), lea_scope, days["student_id"].unique())
    report = school_day_report(days, records, pull, absences, lea_scope)
    return Built(records, not_extracted, pull.lea, [], reports={REPORT: report})


def build_leap(pull: EnrollmentPull, staged: Staged, scope: RunScope,
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(records, not_extracted, ELP days as student_id/session_day rows of the reported students)."""
    ids = pull.students[["student_id", "student_number", "ssid"]].astype({"student_id": "int64"})
    later = "not counted until corrected in the afterschool platform"
    held = [pd.DataFrame(columns=NOT_EXTRACTED_COLUMNS),
            staged.held_report("registrations", "registration(s)", later),
            staged.held_report("attendance", "expanded-learning session(s)", later, ar=False)]
    reg = staged.registrations.astype({"student_id": "int64"})
    reg = reg.merge(ids[["student_id", "ssid"]], on="student_id", how="left", indicator=True)
    # not in the pull: calpads.extracts.not_extracted.explain_unknown_students looks up why (excluded, no enrollment)
    held.append(ne.afterschool_rows(reg[reg["_merge"] == "left_only"], f"registration(s) for {ne.UNKNOWN}"))
    reg = reg[reg["_merge"] == "both"]
    no_ssid = reg["ssid"].isna() | (reg["ssid"].astype(str).str.strip() == "")
    held.append(ne.afterschool_rows(reg[no_ssid], "registration(s) for a student without an SSID in the SIS"))
    registered = set(reg.loc[~no_ssid, "student_id"])

    sessions = staged.sessions[staged.sessions["program"].isin(EXPANDED_LEARNING_PROGRAMS)]
    sessions = sessions.assign(student_id=sessions["student_id"].astype("int64"),
                               session_day=pd.to_datetime(sessions["session_date"], format="%Y-%m-%d"))
    unregistered = sessions[~sessions["student_id"].isin(registered)
                            & ~sessions["student_id"].isin(reg.loc[no_ssid, "student_id"])]
    held.append(ne.afterschool_rows(unregistered, "expanded-learning session(s) without a registration (not reported)"))
    days = sessions[sessions["student_id"].isin(registered)][["student_id", "session_day"]].drop_duplicates()

    counts = days.groupby("student_id").size()
    people = student_fields(pull.students)
    people = people[people["student_id"].isin(registered)].copy()
    people["elp_days"] = people["student_id"].map(counts).fillna(0).astype("int64").astype(str)
    layout = load_layout("LEAP")
    records = pd.DataFrame({
        "record_type": "LEAP",
        "transaction_type": None,
        "local_record_id": people["student_id"].astype(str) + "." + PROGRAM,
        "reporting_lea": pull.lea,
        "academic_year_id": scope.academic_year,
        "ssid": people["ssid"],
        "elp_days": people["elp_days"],
        "lea_program_code": PROGRAM,
        **{c: people[c] for c in ("local_student_id", "legal_first_name", "legal_last_name", "birth_date",
                                  "gender_code")},
        "ctx_student_id": people["student_id"].astype(str),
    }, index=people.index)
    records = sort_records(finish(records, layout.columns), layout)
    return records, pd.concat(held, ignore_index=True), days.reset_index(drop=True)


def absent_days(staged_absences: pd.DataFrame, scope: RunScope, student_ids: object) -> pd.DataFrame:
    """(student_id, att_day) of the staged school absences (``absent_days``) of the given students in the range."""
    a = staged_absences
    day = a["att_date"].astype(str)
    keep = a["student_id"].isin(pd.Series(student_ids, dtype="int64")) & (day >= scope.start_date.isoformat()) & (
        day <= scope.end_date.isoformat())
    out = a[keep.to_numpy(dtype=bool)]
    return pd.DataFrame({"student_id": out["student_id"].astype("int64"),
                         "att_day": pd.to_datetime(out["att_date"].astype(str).str.slice(0, 10), format="%Y-%m-%d")
                         }).reset_index(drop=True)


def school_day_report(days: pd.DataFrame, records: pd.DataFrame, pull: EnrollmentPull, absences: pd.DataFrame,
                      scope: RunScope) -> pd.DataFrame:
    """Per reported student: ELP days split into attended school / absent from school / not a school day."""
    start, end = pd.Timestamp(scope.start_date), pd.Timestamp(scope.end_date)
    enr = selected_enrollments(pull.enrollments, pull.calendar, start, end)
    enr = enr.assign(last=enr["last_day"].fillna(end))[["student_id", "schoolid", "entry", "last"]]
    cal = pd.DataFrame({"schoolid": pull.calendar["schoolid"].astype("int64"),
                        "session_day": pd.to_datetime(pull.calendar["date_value"], format="%Y-%m-%d")})
    d = days.merge(enr, on="student_id", how="inner")
    d = d[(d["entry"] <= d["session_day"]) & (d["session_day"] <= d["last"])]
    d = d.merge(cal, on=["schoolid", "session_day"], how="inner")[["student_id", "session_day"]].drop_duplicates()
    absent = d.merge(absences.rename(columns={"att_day": "session_day"}).drop_duplicates(),
                     on=["student_id", "session_day"], how="inner")
    ids = records["ctx_student_id"].astype("int64")
    total = days.groupby("student_id").size()
    school = d.groupby("student_id").size()
    away = absent.groupby("student_id").size()
    n_total = ids.map(total).fillna(0).astype("int64")
    n_school = ids.map(school).fillna(0).astype("int64")
    n_away = ids.map(away).fillna(0).astype("int64")
    return pd.DataFrame({
        "local_record_id": records["local_record_id"].to_numpy(),
        "local_student_id": records["local_student_id"].to_numpy(),
        "elp_days": n_total.to_numpy(),
        "elp_days_attended_school": (n_school - n_away).to_numpy(),
        "elp_days_absent_from_school": n_away.to_numpy(),
        "elp_days_not_a_school_day": (n_total - n_school).to_numpy(),
    })
