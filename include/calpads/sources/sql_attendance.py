"""STAS day counts, aggregated inside the SIS database.

The largest district keeps ~75M daily attendance rows a year: they never reach pandas. One
statement (SQLAlchemy Core; runs on SQLite and PostgreSQL) returns one row per student per
school with the number of days in each STAS category:

1. ``enr``: the candidate enrollments (STUDENTS + REENROLLMENTS, the same selects as the
   enrollment pull, dates kept as dates);
2. ``days``: daily attendance rows (ATT_ModeDaily) inside the report range, on an in-session
   day of the school (CALENDAR_DAY) and inside one of the student's enrollments at that school
   (entry <= day < exclusive EXITDATE), reduced to one category per student, school and day
   (the first in the configured precedence when a day has several codes; duplicate rows and
   overlapping enrollments therefore count a day once);
3. the outer GROUP BY counts days per category.

Days without an ATTENDANCE row are attended days: they are the in-session days of the
enrollment minus these counts (calpads.extracts.stas).
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from calpads.run_scope import RunScope
from calpads.sources.sql_enrollment import enrollment_selects
from calpads.sources.sql_sis import CALENDAR_DAY

ATTENDANCE = sa.table("attendance", *(sa.column(c) for c in (
    "id", "studentid", "schoolid", "att_date", "attendance_codeid", "att_mode_code")))
ATTENDANCE_CODE = sa.table("attendance_code", *(sa.column(c) for c in (
    "id", "schoolid", "att_code", "presence_status_cd", "calpads_category")))
DAILY = "ATT_ModeDaily"


def category_counts_select(scope: RunScope, school_numbers: list[int], precedence: list[str],
                           columns: dict[str, str | None], uncategorised_absent: str) -> sa.Select:
    """The aggregation statement. precedence: categories, strongest first; columns: category -> output
    column (None = attended, not counted); a code whose category is blank counts as
    ``uncategorised_absent`` when its presence is Absent, else as attended."""
    start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
    current, earlier = enrollment_selects(scope, school_numbers, dates_as_text=False)
    enr = sa.union_all(current, earlier).cte("enr")
    a, ac, cd = ATTENDANCE.c, ATTENDANCE_CODE.c, CALENDAR_DAY.c
    rank_of = {cat: i for i, cat in enumerate(precedence)}
    present_rank = len(precedence)
    rank = sa.case(
        *[(ac.calpads_category == cat, i) for cat, i in rank_of.items()],
        else_=sa.case((ac.presence_status_cd == "Absent", rank_of[uncategorised_absent]), else_=present_rank),
    )
    joined = (
        ATTENDANCE.join(ATTENDANCE_CODE, ac.id == a.attendance_codeid)
        .join(enr, sa.and_(enr.c.student_id == a.studentid, enr.c.schoolid == a.schoolid,
                           a.att_date >= enr.c.entrydate,
                           sa.or_(enr.c.exitdate.is_(None), a.att_date < enr.c.exitdate)))
        .join(CALENDAR_DAY, sa.and_(cd.schoolid == a.schoolid, cd.date_value == a.att_date, cd.insession == 1))
    )
    counted = [rank_of[cat] for cat, col in columns.items() if col]
    last_counted = max(counted, default=-1)
    days = (
        sa.select(a.studentid.label("student_id"), a.schoolid.label("schoolid"), a.att_date,
                  sa.func.min(rank).label("r"))
        .select_from(joined)
        .where(a.att_mode_code == DAILY, a.att_date >= start, a.att_date <= end, a.schoolid.in_(school_numbers),
               # A row ranked after every counted category can only decide a day that counts nowhere:
               # dropping it changes no count, and the (by far most numerous) attended rows leave early.
               rank <= last_counted)
        .group_by(a.studentid, a.schoolid, a.att_date)
        .subquery("days")
    )
    ranks: dict[str, list[int]] = {}
    for cat, col in columns.items():
        if col:
            ranks.setdefault(col, []).append(rank_of[cat])
    return sa.select(
        days.c.student_id, days.c.schoolid,
        *[sa.func.sum(sa.case((days.c.r.in_(rs), 1), else_=0)).label(col) for col, rs in ranks.items()],
    ).group_by(days.c.student_id, days.c.schoolid)


def category_counts(engine: sa.Engine, scope: RunScope, school_numbers: list[int], precedence: list[str],
                    columns: dict[str, str | None], uncategorised_absent: str) -> pd.DataFrame:
    out_cols = list(dict.fromkeys(c for c in columns.values() if c))
    if not school_numbers:
        return pd.DataFrame(columns=["student_id", "schoolid", *out_cols])
    q = category_counts_select(scope, school_numbers, precedence, columns, uncategorised_absent)
    with engine.connect() as conn:
        df = pd.read_sql(q, conn)
    for c in out_cols:
        df[c] = pd.to_numeric(df[c]).fillna(0).astype("int64")
    return df


def absent_days(engine: sa.Engine, start: str, end: str) -> pd.DataFrame:
    """student_id, att_date ('YYYY-MM-DD') of the days from start to end (ISO dates) with a daily code whose
    presence is Absent, one row per student and day: the LEAP report's school absences."""
    a, ac = ATTENDANCE.c, ATTENDANCE_CODE.c
    q = sa.select(a.studentid.label("student_id"), sa.cast(a.att_date, sa.String(10)).label("att_date")).distinct(
    ).select_from(ATTENDANCE.join(ATTENDANCE_CODE, ac.id == a.attendance_codeid)).where(
        a.att_mode_code == DAILY, ac.presence_status_cd == "Absent", a.att_date >= start, a.att_date <= end)
    with engine.connect() as conn:
        out = pd.read_sql(q, conn)
    return pd.DataFrame({"student_id": out["student_id"].astype("int64"),
                         "att_date": out["att_date"].astype(str).str.slice(0, 10).astype(object)})
