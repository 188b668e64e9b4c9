"""What the enrollment pull leaves out, and why: the SQL behind SENR's and STAS's not-extracted rows.

``calpads.sources.sql_enrollment`` selects the enrollments a file reports (students not excluded from state
reporting, with an SSID, dates in the report range). The enrollments it leaves out at a school in the run's
scope, overlapping the report range, fall in two groups: selection criteria the coordinator should still see
(the student or the enrollment is excluded from state reporting; the student has no SSID yet), and data
problems (an entry or exit date that is not a date, which no date comparison can place). ``skipped_select``
reads both, with a reason code; ``calpads.extracts.not_extracted.enrollment_rows`` turns them into report rows.
``student_status`` answers, for student numbers another source names (the afterschool export), whether the SIS
knows them and whether they are excluded or lack an SSID. Same conventions as ``sql_sis``: SQLAlchemy Core,
bound parameters, dates cast to text.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from calpads.run_scope import RunScope
from calpads.sources.sql_sis import REENROLLMENTS, STUDENTS, _text, not_a_date

EXCLUDED, ENROLLMENT_EXCLUDED, NO_SSID, BAD_DATES = "excluded", "enrollment_excluded", "no_ssid", "bad_dates"
COLUMNS = ["student_id", "student_number", "schoolid", "entrydate", "exitdate", "reason_code"]


def _blank(col: sa.ColumnClause) -> sa.ColumnElement[bool]:
    return sa.or_(col.is_(None), sa.func.trim(col) == "")


def skipped_select(scope: RunScope, school_numbers: list[int]) -> sa.Select:
    """Enrollments (current on STUDENTS, earlier on REENROLLMENTS) at ``school_numbers`` overlapping the report
    range by their raw dates, or with a date that is not a date, that the enrollment pull does not select:
    one row each, its first reason in this order: excluded student, excluded enrollment, bad dates, no SSID."""
    start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
    s, r = STUDENTS.c, REENROLLMENTS.c
    students = [s.student_number.in_(scope.students)] if scope.students else []

    def one(src: sa.TableClause, student_id, entry, exit_, excluded_enrollment) -> sa.Select:
        bad = sa.or_(not_a_date(entry), not_a_date(exit_))
        reason = sa.case(
            (s.state_excludefromreporting != 0, EXCLUDED), (excluded_enrollment, ENROLLMENT_EXCLUDED),
            (bad, BAD_DATES), else_=NO_SSID)
        return sa.select(
            student_id.label("student_id"), s.student_number, src.c.schoolid, _text(entry).label("entrydate"),
            _text(exit_).label("exitdate"), reason.label("reason_code"),
        ).where(
            *students, src.c.schoolid.in_(school_numbers),
            sa.or_(entry <= end, not_a_date(entry)), sa.or_(exit_.is_(None), exit_ > start, not_a_date(exit_)),
            # no SSID as the pull tests it (NULL or ''); an SSID of spaces is pulled, and the builder lists it
            sa.or_(bad, s.state_excludefromreporting != 0, excluded_enrollment, s.state_studentnumber.is_(None),
                   s.state_studentnumber == ""),
        )

    current = one(STUDENTS, s.id, s.entrydate, s.exitdate, sa.false())
    earlier = one(REENROLLMENTS, r.studentid, r.entrydate, r.exitdate, r.state_excludefromreporting != 0)
    earlier = earlier.select_from(REENROLLMENTS.join(STUDENTS, s.id == r.studentid))
    return sa.union_all(current, earlier)


def student_status(engine: sa.Engine, student_numbers: list[str]) -> pd.DataFrame:
    """student_number, excluded (bool), no_ssid (bool) of the given numbers the SIS knows (others are absent)."""
    s = STUDENTS.c
    frames = [pd.DataFrame(columns=["student_number", "excluded", "no_ssid"])]
    numbers = sorted({str(n) for n in student_numbers})
    with engine.connect() as conn:
        for i in range(0, len(numbers), 1000):
            q = sa.select(s.student_number, (s.state_excludefromreporting != 0).label("excluded"),
                          _blank(s.state_studentnumber).label("no_ssid")).where(
                s.student_number.in_(numbers[i:i + 1000]))
            frames.append(pd.read_sql(q, conn))
    out = pd.concat(frames, ignore_index=True)
    return out.assign(student_number=out["student_number"].astype(str), excluded=out["excluded"].astype(bool),
                      no_ssid=out["no_ssid"].astype(bool))
