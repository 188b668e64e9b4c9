"""Why a record or a student is not in a run's file: the reasons, in one place.

A builder leaves a row out of its file either because the row is outside the run by the CALPADS selection
criteria (another school year, a program outside the submission's set, a school outside the run's scope ...:
not listed; SENR and STAS do list their students excluded from state reporting, so that the coordinator sees
why), or because of a data problem the coordinator can fix in the SIS. Every row of the second kind is
listed with a specific reason, never dropped silently:
- in the run's report (``report/not_extracted.csv`` and the "Not extracted" table of ``report/index.html``),
- counted per reason in the manifest and the summary email (``validation.not_extracted_by_reason``),
- and, for the transaction-processed files, it keeps a previously submitted record with the same Local Record
  ID (or the same student + program / school) from being sent as a delete (``calpads.history.diff``).

The texts say what is wrong and what to do, in the coordinator's words. They never carry a name, a birth date
or an SSID: rows are named by Local Record ID and Local Student ID only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ["local_record_id", "local_student_id", "school_of_attendance", "reason"]

# Seed (Student Program Records Report, "Operational Keys"): a record with a blank key is not extracted.
NO_SSID = ("no SSID yet: the student has no SSID (State Student Number) in the SIS. Enter the SSID (or request one "
           "from CALPADS); the record goes out in the first run after that")
BLANK_PROGRAM_CODE = "blank Education Program Code: enter the program code on the student's program record"
BLANK_MEMBERSHIP_CODE = ("blank Education Program Membership Code: enter the membership code on the student's "
                         "program record")
BLANK_START_DATE = ("blank Education Program Membership Start Date: enter the start date on the student's program "
                    "record")
BLANK_SERVICE_CODE = "blank Education Service Code: enter the service code on the student's Title I service record"
BAD_SERVICE_DATE = ("a Title I service date is not a date: the service's date in the SIS is not a real date "
                    "(YYYY-MM-DD), so whether it falls in the report range cannot be decided. Correct it")
# Student criteria (seed): the student must be enrolled in the report range.
NO_ENROLLMENT = ("no enrollment in the report range: the program record's dates fall in the report range but the "
                 "student has no enrollment in it. End the program (or correct its dates) if the student has left; "
                 "correct the enrollment dates if the student is still enrolled")
BAD_ENROLLMENT_DATES = ("an enrollment date is not a date: the enrollment's ENTRYDATE or EXITDATE in the SIS is not a "
                        "real date (YYYY-MM-DD, 1900-2199; a placeholder such as 9999-12-31 is none). Correct it "
                        "(an enrollment that has not ended has a blank EXITDATE); until then the enrollment cannot "
                        "be reported")


def frame(rows: pd.DataFrame | None = None, reason: str | pd.Series | None = None, **columns: object) -> pd.DataFrame:
    """Not-extracted rows in the report's columns (``columns`` adds others, e.g. ``program_code``)."""
    if rows is None or rows.empty:
        return pd.DataFrame(columns=[*COLUMNS, *columns])
    out = pd.DataFrame({
        "local_record_id": rows["local_record_id"].astype(str),
        "local_student_id": rows["local_student_id"].astype(str),
        "school_of_attendance": rows["school_of_attendance"] if "school_of_attendance" in rows else None,
        "reason": reason,
    }, index=rows.index)
    for name, values in columns.items():
        out[name] = values
    return out.reset_index(drop=True)


def counts_by_reason(not_extracted: pd.DataFrame) -> dict[str, int]:
    """Rows per reason, largest first (a leading count such as "2 registration(s) ..." is not part of the reason)."""
    if not len(not_extracted) or "reason" not in not_extracted:
        return {}
    reasons = not_extracted["reason"].astype(str).map(lambda r: re.sub(r"^\d+ ", "", r))
    counts = reasons.value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


# Selection criteria the coordinator should still see (SENR, STAS and the afterschool-linked files): not data
# problems, so they never keep a submitted record from being deleted.
EXCLUDED = ("excluded from state reporting: the student is marked to be excluded from state reporting in the SIS "
            "(STUDENTS.STATE_EXCLUDEFROMREPORTING). Clear the mark if the student must be reported")
ENROLLMENT_EXCLUDED = ("enrollment excluded from state reporting: this earlier enrollment is marked to be excluded "
                       "from state reporting in the SIS (REENROLLMENTS.STATE_EXCLUDEFROMREPORTING)")
NOT_DATA_PROBLEMS = {EXCLUDED, ENROLLMENT_EXCLUDED}

SKIPPED_REASONS = {"excluded": EXCLUDED, "enrollment_excluded": ENROLLMENT_EXCLUDED, "no_ssid": NO_SSID,
                   "bad_dates": BAD_ENROLLMENT_DATES}   # calpads.sources.sql_skipped reason codes


def data_problems(not_extracted: pd.DataFrame) -> pd.DataFrame:
    """The rows left out for a data problem (every reason but exclusion from state reporting): the ones that keep
    a previously submitted record from becoming a delete (calpads.history.diff.still_in_sis)."""
    if not len(not_extracted) or "reason" not in not_extracted:
        return not_extracted
    return not_extracted[~not_extracted["reason"].isin(NOT_DATA_PROBLEMS)]


def without_blank_ssid(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records with an SSID, not-extracted rows of those without one): an SSID of spaces is blank too."""
    blank = records["ssid"].isna() | (records["ssid"].astype(str).str.strip() == "")
    return records[~blank.to_numpy(dtype=bool)], frame(records[blank.to_numpy(dtype=bool)], NO_SSID)


def readable_dates(enrollments: pd.DataFrame) -> np.ndarray:
    """True for the enrollment rows whose entry date, and exit date when there is one, are real dates
    (calpads.dates.sis_days): the others cannot be placed in the report range (an unreadable exit would pass for an
    open enrollment)."""
    from calpads.dates import sis_days
    from calpads.extracts.common import blank_to_none

    exit_text = blank_to_none(enrollments["exitdate"])
    unreadable = sis_days(enrollments["entrydate"]).isna() | (exit_text.notna() & sis_days(exit_text).isna())
    return ~unreadable.to_numpy(dtype=bool)


def enrollment_rows(pull: Any, start: pd.Timestamp, end: pd.Timestamp,
                    record_id: Callable[[pd.DataFrame], pd.Series]) -> pd.DataFrame:
    """Not-extracted rows of an enrollment pull (calpads.sources.sql_enrollment.EnrollmentPull): the enrollments
    the pull skipped (``pull.skipped``: excluded, no SSID, a date that is not a date), those with readable dates
    only when they are in the report range by the exact rule (last in-session day), and the pulled enrollments
    whose date text looks like a date but is none (2025-02-30). ``record_id`` gives the file's Local Record ID
    of an enrollment row (student_id, schoolid, entrydate)."""
    from calpads.extracts.enrollment import selected_enrollments

    enr = pull.enrollments
    unreadable = ~readable_dates(enr)
    numbers = pull.students.set_index("student_id")["student_number"] if len(pull.students) else pd.Series()
    parts = [enr[unreadable].assign(student_number=enr.loc[unreadable, "student_id"].map(numbers),
                                    reason=BAD_ENROLLMENT_DATES)]
    skipped = getattr(pull, "skipped", None)
    if skipped is not None and len(skipped):
        reasons = skipped["reason_code"].map(SKIPPED_REASONS)
        bad = (skipped["reason_code"] == "bad_dates").to_numpy(dtype=bool)
        parts.append(skipped[bad].assign(reason=reasons[bad]))
        readable = skipped[~bad].assign(reason=reasons[~bad]).reset_index(drop=True)
        parts.append(selected_enrollments(readable, pull.calendar, start, end))
    rows = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if rows is None:
        return frame()
    schools = pull.scoped_schools.set_index("school_number")["school_code"]
    rows = rows[rows["schoolid"].isin(schools.index)].reset_index(drop=True)
    rows = rows.assign(local_record_id=record_id(rows), local_student_id=rows["student_number"],
                       school_of_attendance=rows["schoolid"].map(schools))
    return frame(rows, rows["reason"])


UNKNOWN = "a student the SIS does not know"          # the afterschool-linked builders' words for a number not pulled
HELD_UNKNOWN = "KNOWN-STUDENT"   # the afterschool import's rules AS-KNOWN-STUDENT / ASR-KNOWN-STUDENT
UNKNOWN_BECAUSE = {
    "excluded": "a student excluded from state reporting in the SIS (STUDENTS.STATE_EXCLUDEFROMREPORTING): clear "
                "the mark if the student must be reported",
    "no_ssid": "a student without an SSID in the SIS: enter the SSID (or request one from CALPADS)",
    "known": "a student with no enrollment in the reporting year at a school that reports to CALPADS: check the "
             "student's enrollment in the SIS",
}


def explain_unknown_students(status_of: Callable[[list[str]], pd.DataFrame],
                             not_extracted: pd.DataFrame) -> pd.DataFrame:
    """Rows that name "a student the SIS does not know" (a student number from the afterschool export that the
    pull did not select) get the true reason, looked up in the SIS by ``status_of`` (student numbers ->
    student_number, excluded, no_ssid: calpads.extracts.selection.student_status): excluded from state
    reporting, no SSID, or really not in the SIS (then the words stay). Other rows are left as they are."""
    if not len(not_extracted):
        return not_extracted
    reason = not_extracted["reason"].astype(str)
    # the builders' own words, or afterschool rows the import held back because the SIS did not know the number
    unknown = (reason.str.contains(UNKNOWN, regex=False) | reason.str.contains(HELD_UNKNOWN, regex=False)
               ).to_numpy(dtype=bool)
    if not unknown.any():
        return not_extracted
    status = status_of(not_extracted.loc[unknown, "local_student_id"].astype(str).tolist())
    why = pd.Series("excluded", index=status.index).where(status["excluded"], "no_ssid").where(
        status["excluded"] | status["no_ssid"], "known")
    because = dict(zip(status["student_number"], why, strict=True))
    out = not_extracted.copy()
    for i in np.flatnonzero(unknown):
        key = because.get(str(out.iloc[i]["local_student_id"]), "unknown")
        if key in UNKNOWN_BECAUSE:
            text = str(out.iloc[i]["reason"])
            text = (text.replace(UNKNOWN, UNKNOWN_BECAUSE[key]) if UNKNOWN in text
                    else f"{text}; the number is of {UNKNOWN_BECAUSE[key]}")
            out.iloc[i, out.columns.get_loc("reason")] = text
    return out


def afterschool_rows(rows: pd.DataFrame, reason: str) -> pd.DataFrame:
    """The afterschool rows a builder left out (LEAP registrations and sessions, STAS attendance recovery), one
    report row per student number with their count ("<n> <reason>"): no SSIDs, names or dates."""
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    n = rows.groupby("student_number").size()
    return pd.DataFrame({"local_record_id": "afterschool." + n.index.astype(str), "local_student_id": n.index,
                         "school_of_attendance": None, "reason": [f"{k} {reason}" for k in n.to_numpy()]})
