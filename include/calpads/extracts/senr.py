"""SENR builder: one record per enrollment (STUDENTS' current one and REENROLLMENTS) in the report range.

Selection is the Student Criteria of PowerSchool's Student Program Records report, which the project
applies to SENR too: students, enrollments and schools not excluded from state reporting, an SSID, an
enrollment whose entry is on or before the report end date and whose last day (the last in-session day
before PowerSchool's exclusive EXITDATE) is blank or after the report start date. The enrollment logic is
``calpads.extracts.enrollment`` -- the very functions SPRG's cross-file ctx_ columns use, so the
enrollment a program record is checked against is the one SENR sends.

The enrollment's CALPADS codes come from the SIS (contract v2 columns, see docs/senr-stas-leap.md):
- 1.23 Enrollment Status = ENROLLMENTSTATUS; blank means 10 (primary), as it always did before the SIS
  carried the column.
- 1.26-1.29 (exit reason, completion status, expected receiver school, UC/CSU indicator) belong to the
  exit: they are sent with the Exit Date (1.25), and blank while the exit is not reported (no EXITDATE,
  or an exit after the report end date).
- A no-show (an enrollment whose EXITDATE is on or before its ENTRYDATE: no day attended) is reported
  with the Exit Date one day before its Start Date, as CALPADS asks for an N470 no-show (SENR0018,
  https://documentation.calpads.org/Troubleshooting/SENR/SENR0018).
A SIS without those columns is still read: the fields are blank, 1.23 is 10, the pull's log and the run
report say which columns are missing, and exits are published with a warning instead of held back.

Fields the contract SIS cannot supply are blank, and ``include/calpads/layouts/senr.yaml`` says so
per field (``derivation: "blank: ..."``).
"""

from __future__ import annotations

import logging

import pandas as pd

from calpads.extracts import not_extracted as ne
from calpads.extracts.common import blank_to_none, ccyymmdd, sort_records, to_datetime
from calpads.extracts.enrollment import grade_code, selected_enrollments
from calpads.extracts.student_fields import finish, student_fields
from calpads.layouts import load_layout
from calpads.run_scope import RunScope
from calpads.sources.sql_enrollment import EnrollmentPull
from calpads.staging.contract import ENROLLMENT_TABLES
from calpads.staging.protocols import BuildContext, Built
from calpads.staging.store import StagedTables

log = logging.getLogger(__name__)

PRIMARY = "10"
# SIS column -> SENR column of the exit fields (sent only with a reported exit date)
EXIT_FIELDS = {"exitcode": "exit_reason", "completionstatus": "completion_status",
               "receiver_school": "expected_receiver_school", "uccsu_reqs_met": "uc_csu_requirements"}


TABLES = ENROLLMENT_TABLES   # the staged tables SENR reads


def build(staged: StagedTables, scope: RunScope, context: BuildContext) -> Built:
    """Registry entry point (layout key ``builder``): SENR from the staged tables."""
    from calpads.extracts.selection import enrollment_pull

    pull = enrollment_pull(staged, scope)
    records, not_extracted = build_senr(pull, scope)
    # Still enrolled in scope: a published enrollment, or one left out for a data problem (a delete of theirs
    # needs allow_enrolled_deletes).
    enrolled = set(records["local_student_id"].dropna()) | set(
        ne.data_problems(not_extracted)["local_student_id"].dropna())
    return Built(records, not_extracted, pull.lea, [str(c) for c in pull.scoped_schools["school_code"].dropna()],
                 notes=missing_codes_notes(pull), enrolled_students=sorted(str(n) for n in enrolled))


def missing_codes_notes(pull: EnrollmentPull) -> list[str]:
    """The report's (and log's) warning when the SIS lacks contract v2 columns; empty when it has them all."""
    missing = pull.missing_codes
    if not missing:
        return []
    note = (f"The SIS has no {', '.join(missing)} column(s) (the enrollment's CALPADS codes): Enrollment Status "
            "(1.23) is sent as 10 (primary) and the exit reason, completion status, expected receiver school and "
            "UC/CSU indicator (1.26-1.29) are blank where the column is missing. Exits are published with a "
            "warning; enter their exit reasons in CALPADS, or ask district IT to add the columns to the SIS.")
    log.warning(note)
    return [note]


def build_senr(pull: EnrollmentPull, scope: RunScope) -> tuple[pd.DataFrame, pd.DataFrame]:
    start, end = pd.Timestamp(scope.start_date), pd.Timestamp(scope.end_date)
    enr = selected_enrollments(pull.enrollments[ne.readable_dates(pull.enrollments)], pull.calendar, start, end)
    enr = enr.merge(pull.scoped_schools[["school_number", "school_code"]], left_on="schoolid",
                    right_on="school_number", how="inner")
    enr = enr.merge(student_fields(pull.students), on="student_id", how="inner")
    no_show = to_datetime(enr["exitdate"]) <= enr["entry"]
    last_day = enr["last_day"].mask(no_show, enr["entry"] - pd.Timedelta(days=1))
    exit_reported = last_day.where(last_day <= end)
    exited = exit_reported.notna()
    codes = {c: (blank_to_none(enr[c]) if c in enr else pd.Series(None, index=enr.index, dtype="object"))
             for c in (*EXIT_FIELDS, "enrollmentstatus")}
    exit_codes_read = enr["source"].map(lambda src: "exitcode" in pull.codes_read.get(src, frozenset()))
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
        enrollment_status=codes["enrollmentstatus"].fillna(PRIMARY),
        grade_level=grade_code(enr["grade_level"]),
        enrollment_exit_date=exit_reported.dt.strftime("%Y%m%d").where(exited, None),
        **{col: codes[sis_col].where(exited, None) for sis_col, col in EXIT_FIELDS.items()},
        ctx_student_id=enr["student_id"].astype(str),
        ctx_enrollment_source=enr["source"],
        ctx_preferred_gender=enr["ctx_preferred_gender"],
        # "N" when the enrollment's table has no EXITCODE column: SENR-EXIT-REASON is then only a warning
        ctx_exit_codes_in_sis=exit_codes_read.map({True: "Y", False: "N"}),
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
