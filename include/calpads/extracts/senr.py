"""SENR builder: one record per enrollment (STUDENTS' current one and REENROLLMENTS) in the report range.

Selection is the seed's Student Criteria (shared/seeds/powerschool-student-program-records.txt),
which the contract applies to SENR too: students, enrollments and schools not excluded from state
reporting, an SSID, an enrollment whose entry is on or before the report end date and whose last day
(the last in-session day before PowerSchool's exclusive EXITDATE) is blank or after the report start
date. The enrollment logic is ``calpads.extracts.enrollment`` -- the very functions SPRG's cross-file
ctx_ columns use, so the enrollment a program record is checked against is the one SENR sends.

Fields the contract SIS cannot supply are blank, and ``include/calpads/layouts/senr.yaml`` says so
per field (``derivation: "blank: ..."``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from calpads.extracts import not_extracted as ne
from calpads.extracts.common import ccyymmdd, sort_records
from calpads.extracts.enrollment import grade_code, selected_enrollments
from calpads.extracts.student_fields import finish, student_fields
from calpads.layouts import load_layout
from calpads.run_scope import RunScope
from calpads.sources.sql_enrollment import EnrollmentPull, pull_enrollment

PRIMARY = "10"


def build(sis: Any, scope: RunScope) -> Any:
    """Registry entry point (layout key ``builder``)."""
    from calpads.extracts.registry import Built

    pull = pull_enrollment(sis, scope)
    records, not_extracted = build_senr(pull, scope)
    # Still enrolled in scope: a published enrollment, or one left out for a data problem (a delete of theirs
    # needs allow_enrolled_deletes).
    enrolled = set(records["local_student_id"].dropna()) | set(
        ne.data_problems(not_extracted)["local_student_id"].dropna())
    return Built(records, not_extracted, pull.lea, [str(c) for c in pull.scoped_schools["school_code"].dropna()],
                 enrolled_students=sorted(str(n) for n in enrolled))


def build_senr(pull: EnrollmentPull, scope: RunScope) -> tuple[pd.DataFrame, pd.DataFrame]:
    start, end = pd.Timestamp(scope.start_date), pd.Timestamp(scope.end_date)
    enr = selected_enrollments(pull.enrollments[ne.readable_dates(pull.enrollments)], pull.calendar, start, end)
    enr = enr.merge(pull.scoped_schools[["school_number", "school_code"]], left_on="schoolid",
                    right_on="school_number", how="inner")
    enr = enr.merge(student_fields(pull.students), on="student_id", how="inner")
    exit_reported = enr["last_day"].where(enr["last_day"] <= end)
    entry_iso = enr["entrydate"].astype("string").str.slice(0, 10)
    layout = load_layout("SENR")
    records = pd.DataFrame({c: pd.Series(None, index=enr.index, dtype="object") for c in layout.columns})
    records = records.assign(
        record_type="SENR",
        local_record_id=senr_record_id(enr),
        reporting_lea=pull.lea,
        school_of_attendance=enr["school_code"],
        academic_year_id=scope.academic_year,
        **{c: enr[c] for c in ("ssid", "local_student_id", "legal_first_name", "legal_last_name",
                               "alias_first_name", "alias_last_name", "birth_date", "gender_code")},
        enrollment_start_date=ccyymmdd(entry_iso),
        enrollment_status=PRIMARY,
        grade_level=grade_code(enr["grade_level"]),
        enrollment_exit_date=exit_reported.dt.strftime("%Y%m%d").where(exit_reported.notna(), None),
        ctx_student_id=enr["student_id"].astype(str),
        ctx_enrollment_source=enr["source"],
        ctx_preferred_gender=enr["ctx_preferred_gender"],
    )
    records = finish(records, layout.columns)
    # Every enrollment left out is listed with its reason (calpads.extracts.not_extracted), never lost silently.
    records, no_ssid = ne.without_blank_ssid(records)
    not_extracted = pd.concat([no_ssid, ne.enrollment_rows(pull, start, end, senr_record_id)], ignore_index=True)
    return sort_records(records, layout), not_extracted


def senr_record_id(enr: pd.DataFrame) -> pd.Series:
    """Local Record ID of an enrollment row: STUDENTS.ID.school number.entry date (CCYYMMDD)."""
    entry_iso = enr["entrydate"].astype("string").str.slice(0, 10)
    return (enr["student_id"].astype(str) + "." + enr["schoolid"].astype(str) + "."
            + entry_iso.str.replace("-", "", regex=False)).astype(object)
