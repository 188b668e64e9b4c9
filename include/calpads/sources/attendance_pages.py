"""Daily attendance over a vendor API, aggregated page by page into the two frames the builders read.

A large district keeps ~85M daily ATTENDANCE rows a year: an API source never holds them as rows. It
feeds each fetched page to ``AttendancePages.add`` and keeps only what the SQL source computes inside
the database (calpads.staging.contract, the aggregates):

- ``attendance_category_days``: what ``calpads.sources.sql_attendance.category_counts`` returns for the
  SQL adapter: per student and school, the days in each STAS category, over
  ``calpads.extracts.selection.category_days_scope`` (every reportable school; the run's dates counted through
  the STAS counting date). Daily rows (ATT_ModeDaily) in that range, on an in-session day of the school and
  inside one of the student's candidate enrollments at that school (entry <= day < exclusive EXITDATE), with a
  code that ATTENDANCE_CODE knows; one category per student, school and day (the first in the precedence of
  ``stas.yaml``), so duplicate rows and overlapping enrollments count a day once.
- ``absent_days``: what ``sql_attendance.absent_days`` returns over ``selection.absent_days_range`` (LEAP's
  reporting year): distinct (student_id, att_date) of daily rows whose code's presence is Absent, for every
  student (the LEAP builder keeps the students it reports).

Which schools, days and enrollments count is the one selection's (calpads.extracts.selection:
``reportable_schools``, ``in_session_days``, ``candidate_enrollments``), over the client's rows typed as the
staged tables are (calpads.staging.contract.rows_frame); this module only streams the pages through the
SQL statement's joins and its one-category-a-day rule (tests/integration/test_attendance_pages.py compares
both on the demo district, with duplicate rows, several codes on a day, overlapping enrollments, days
outside enrollments and days out of session planted). Memory: the enrollments, the in-session days and one
entry per student-day with an absence-like code (a few percent of the rows), never the pages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from calpads.extracts.selection import (
    absent_days_range,
    candidate_enrollments,
    category_days_scope,
    in_session_days,
    reportable_schools,
)
from calpads.run_scope import RunScope
from calpads.sources.sql_attendance import DAILY
from calpads.staging import contract as c

log = logging.getLogger(__name__)

CATEGORY_DAYS, ABSENT_DAYS = c.ATTENDANCE_CATEGORY_DAYS, c.ABSENT_DAYS
ATTENDANCE_COLUMNS = c.SOURCE_ONLY_COLUMNS[c.ATTENDANCE]
CODE_COLUMNS = c.SOURCE_ONLY_COLUMNS[c.ATTENDANCE_CODE]
Rows = list[dict[str, Any]]


def fetch_range(scope: RunScope) -> tuple[str, str]:
    """The dates an API pull must read attendance for: both aggregates' ranges together (ISO text)."""
    counted = category_days_scope(scope)
    first, last = absent_days_range(scope)
    return min(counted.start_date.isoformat(), first), max(counted.end_date.isoformat(), last)


def _frame(tables: Mapping[str, Rows], table: str) -> pd.DataFrame:
    columns = c.TABLE_COLUMNS.get(table) or c.SOURCE_ONLY_COLUMNS[table]
    return c.rows_frame(tables.get(table, []), columns)


class AttendancePages:
    """Give it the small contract tables first (rows, as ``pull_tables`` returns them), then every ATTENDANCE
    page (``add``), then ``frames()``."""

    def __init__(self, tables: Mapping[str, Rows], scope: RunScope, settings: dict[str, Any] | None = None):
        if settings is None:
            from calpads.extracts.stas import settings as stas_settings

            settings = stas_settings()
        columns: dict[str, str | None] = dict(settings["categories"])
        precedence = list(columns)
        rank_of = {cat: i for i, cat in enumerate(precedence)}
        present_rank = len(precedence)
        absent_rank = rank_of[settings["uncategorised_absent"]]
        # sql_attendance: the output columns, each with the ranks (categories) it counts
        self.ranks: dict[str, set[int]] = {}
        for cat, col in columns.items():
            if col:
                self.ranks.setdefault(col, set()).add(rank_of[cat])
        self.last_counted = max((r for rs in self.ranks.values() for r in rs), default=-1)

        counted = category_days_scope(scope)
        self.start, self.end = counted.start_date.isoformat(), counted.end_date.isoformat()
        self.year_start, self.year_end = absent_days_range(scope)

        # code id -> (rank, absent?)
        self.codes: dict[int, tuple[int, bool]] = {}
        for code in _frame(tables, c.ATTENDANCE_CODE).itertuples(index=False):
            cat, presence = code.calpads_category, code.presence_status_cd
            rank = rank_of[cat] if cat in rank_of else (absent_rank if presence == "Absent" else present_rank)
            self.codes[int(code.id)] = (rank, presence == "Absent")

        numbers = reportable_schools(_frame(tables, c.SCHOOLS))["school_number"]
        self.school_numbers = {int(n) for n in numbers}
        days = in_session_days(_frame(tables, c.CALENDAR_DAY), numbers)
        self.in_session = set(zip(days["schoolid"].astype("int64").tolist(), days["date_value"].tolist(),
                                  strict=True))
        cur, earlier = candidate_enrollments(_frame(tables, c.STUDENTS), _frame(tables, c.REENROLLMENTS), counted,
                                             numbers)
        self.enrollments: dict[tuple[int, int], list[tuple[str, str | None]]] = {}
        for rows, key in ((cur, "id"), (earlier, "studentid")):
            for sid, school, entry, exit_ in zip(rows[key].tolist(), rows["schoolid"].tolist(),
                                                 rows["entrydate"].tolist(), rows["exitdate"].tolist(), strict=True):
                self.enrollments.setdefault((int(sid), int(school)), []).append(
                    (entry, None if pd.isna(exit_) else exit_))
        self.best: dict[tuple[int, int, str], int] = {}      # (student, school, day) -> strongest rank
        self.absent: set[tuple[int, str]] = set()             # (student, day), LEAP's year
        self.rows = 0

    def _enrolled(self, sid: int, school: int, day: str) -> bool:
        return any(entry <= day and (exit_ is None or day < exit_)
                   for entry, exit_ in self.enrollments.get((sid, school), ()))

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """One page of ATTENDANCE rows (contract columns, values as text or typed)."""
        for a in rows:
            self.rows += 1
            if a.get("att_mode_code") != DAILY or a.get("attendance_codeid") in (None, ""):
                continue
            code = self.codes.get(int(a["attendance_codeid"]))
            if code is None:          # the SQL inner join drops a row whose code is unknown; so does this
                continue
            rank, absent = code
            sid, school, day = int(a["studentid"]), int(a["schoolid"]), str(a["att_date"])[:10]
            if absent and self.year_start <= day <= self.year_end:
                self.absent.add((sid, day))
            if (rank > self.last_counted or not self.start <= day <= self.end or school not in self.school_numbers
                    or (school, day) not in self.in_session or not self._enrolled(sid, school, day)):
                continue
            key = (sid, school, day)
            if rank < self.best.get(key, rank + 1):
                self.best[key] = rank

    def category_days(self) -> pd.DataFrame:
        cols = list(self.ranks)
        if not self.school_numbers:
            return pd.DataFrame(columns=["student_id", "schoolid", *cols])
        counts: dict[tuple[int, int], list[int]] = {}
        for (sid, school, _day), rank in self.best.items():
            per = counts.setdefault((sid, school), [0] * len(cols))
            for i, col in enumerate(cols):
                if rank in self.ranks[col]:
                    per[i] += 1
        df = pd.DataFrame([(sid, school, *n) for (sid, school), n in sorted(counts.items())],
                          columns=["student_id", "schoolid", *cols])
        return df.astype({col: "int64" for col in df.columns})

    def absent_days(self) -> pd.DataFrame:
        """student_id, att_date ('YYYY-MM-DD'), as the SQL source stages ``absent_days``."""
        pairs = sorted(self.absent)
        return pd.DataFrame({"student_id": pd.Series([p[0] for p in pairs], dtype="int64"),
                             "att_date": pd.Series([p[1] for p in pairs], dtype=object)})

    def frames(self) -> dict[str, pd.DataFrame]:
        log.info("attendance: %d rows read, %d student-days counted for STAS, %d absent days for LEAP",
                 self.rows, len(self.best), len(self.absent))
        return {CATEGORY_DAYS: self.category_days(), ABSENT_DAYS: self.absent_days()}
