"""The reason codes of the enrollments a SENR / STAS pull leaves out (calpads.extracts.selection.skipped_enrollments).

The enrollments left out at a school in the run's scope, overlapping the report range, fall in two groups:
selection criteria the coordinator should still see (the student or the enrollment is excluded from state
reporting; the student has no SSID yet), and data problems (an entry or exit date that is not a date, which no
date comparison can place). ``calpads.extracts.not_extracted.enrollment_rows`` turns them into report rows.
"""

from __future__ import annotations

EXCLUDED, ENROLLMENT_EXCLUDED, NO_SSID, BAD_DATES = "excluded", "enrollment_excluded", "no_ssid", "bad_dates"
COLUMNS = ["student_id", "student_number", "schoolid", "entrydate", "exitdate", "reason_code"]


