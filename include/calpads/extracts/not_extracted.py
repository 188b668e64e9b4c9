"""Why a record or a student is not in a run's file: the reasons, in one place.

A builder leaves a row out of its file either because the row is outside the run by the CALPADS selection
criteria (another school year, a program outside the submission's set, a school or student excluded from
state reporting ...: not listed), or because of a data problem the coordinator can fix in the SIS. Every
row of the second kind is listed here with a specific reason, never dropped silently:
- in the run's report (``report/not_extracted.csv`` and the "Not extracted" table of ``report/index.html``),
- counted per reason in the manifest and the summary email (``validation.not_extracted_by_reason``),
- and, for the transaction-processed files, it keeps a previously submitted record with the same Local Record
  ID (or the same student + program / school) from being sent as a delete (``calpads.history.diff``).

The texts say what is wrong and what to do, in the coordinator's words. They never carry a name, a birth date
or an SSID: rows are named by Local Record ID and Local Student ID only.
"""

from __future__ import annotations

import re

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
# Student criteria (seed): the student must be enrolled in the report range.
NO_ENROLLMENT = ("no enrollment in the report range: the program record's dates fall in the report range but the "
                 "student has no enrollment in it. End the program (or correct its dates) if the student has left; "
                 "correct the enrollment dates if the student is still enrolled")
BAD_ENROLLMENT_DATES = ("an enrollment date is not a date: the enrollment's ENTRYDATE or EXITDATE in the SIS is not a "
                        "real date (YYYY-MM-DD). Correct it; until then the enrollment cannot be reported")


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
