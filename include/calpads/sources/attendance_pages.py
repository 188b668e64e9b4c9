"""Daily attendance over a vendor API, aggregated page by page into the two frames the builders read.

A large district keeps ~85M daily ATTENDANCE rows a year: an API source never holds them as rows. It
feeds each fetched page to ``AttendancePages.add`` and keeps only what the SQL source computes inside
the database:

- ``attendance_category_days``: what ``calpads.sources.sql_attendance.category_counts`` returns for the
  STAS pull (``calpads.extracts.stas.pull_stas``): per student and school, the days in each STAS category,
  over every reportable school of the LEA (equal, school by school, to the SQL for the run's schools; the
  LEA-wide counts are what ``stas.lea_wide_recovery`` reads). Same rules as that module's statement: daily
  rows (ATT_ModeDaily) in the report range counted through ``calpads.extracts.stas.counted_through``, on an
  in-session day of the school (CALENDAR_DAY) and inside one of the student's candidate enrollments at that
  school (entry <= day < exclusive EXITDATE; the enrollment selection of ``sql_enrollment.enrollment_selects``),
  with a code that ATTENDANCE_CODE knows; one category per student, school and day (the first in the
  precedence of ``stas.yaml``), so duplicate rows and overlapping enrollments count a day once.
- ``absent_days``: what ``calpads.extracts.leap.absent_days`` returns over LEAP's reporting year
  (``leap.reporting_year``): distinct (student_id, att_day) of daily rows whose code's presence is Absent,
  for every student (the LEAP builder keeps the students it reports).

This is the one sanctioned second implementation of that SQL: tests/integration/test_attendance_pages.py
compares both on the demo district, with duplicate rows, several codes on a day, overlapping enrollments,
days outside enrollments and days out of session planted. Memory: the enrollments, the in-session days and
one entry per student-day with an absence-like code (a few percent of the rows), never the pages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pandas as pd

from calpads.run_scope import RunScope
from calpads.sources.sprg_frames import reportable_schools, typed
from calpads.sources.sql_attendance import DAILY

log = logging.getLogger(__name__)

CATEGORY_DAYS, ABSENT_DAYS = "attendance_category_days", "absent_days"
ATTENDANCE_COLUMNS = ["id", "studentid", "schoolid", "att_date", "attendance_codeid", "att_mode_code"]
CODE_COLUMNS = ["id", "schoolid", "att_code", "presence_status_cd", "calpads_category"]
Rows = list[dict[str, Any]]


def stas_scope(scope: RunScope) -> RunScope:
    """The scope the STAS day counts are taken over (no day after the run's date), as stas.pull_stas does."""
    from calpads.extracts.stas import counted_through

    return replace(scope, end_date=counted_through(scope))


def leap_scope(scope: RunScope) -> RunScope:
    """LEAP's reporting year (the whole academic year, the whole LEA), as leap.build does."""
    from calpads.extracts.leap import reporting_year

    return reporting_year(scope)


def fetch_range(scope: RunScope) -> tuple[str, str]:
    """The dates an API pull must read attendance for: both frames' ranges together (ISO text)."""
    a, b = stas_scope(scope), leap_scope(scope)
    return min(a.start_date, b.start_date).isoformat(), max(a.end_date, b.end_date).isoformat()


def _ssid_present(s: dict[str, Any]) -> bool:
    return s["state_studentnumber"] is not None and s["state_studentnumber"] != ""


class AttendancePages:
    """Give it the small contract tables first, then every ATTENDANCE page (``add``), then ``frames()``."""

    def __init__(self, tables: dict[str, Rows], scope: RunScope, settings: dict[str, Any] | None = None):
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

        stas = stas_scope(scope)
        self.start, self.end = stas.start_date.isoformat(), stas.end_date.isoformat()
        year = leap_scope(scope)
        self.year_start, self.year_end = year.start_date.isoformat(), year.end_date.isoformat()

        # code id -> (rank, absent?)
        self.codes: dict[int, tuple[int, bool]] = {}
        for c in typed(tables.get("attendance_code", []), CODE_COLUMNS):
            cat, presence = c["calpads_category"], c["presence_status_cd"]
            rank = rank_of[cat] if cat in rank_of else (absent_rank if presence == "Absent" else present_rank)
            self.codes[int(c["id"])] = (rank, presence == "Absent")

        # Every reportable school, whatever schools the run covers: counts per student and school do not depend
        # on the other schools, and a STAS run narrowed to some schools still works out 13.24 over the whole LEA
        # (stas.lea_wide_recovery). The builder keeps the schools it reports.
        schools = reportable_schools(typed(tables.get("schools", []), [
            "id", "school_number", "alternate_school_number", "subdistrict", "state_excludefromreporting"]))
        self.school_numbers = {int(n) for n in schools["school_number"]}
        self.in_session = {(c["schoolid"], c["date_value"]) for c in typed(
            tables.get("calendar_day", []), ["schoolid", "date_value", "insession"]) if c["insession"] == 1}
        self.enrollments = self._enrollments(tables, stas)
        self.best: dict[tuple[int, int, str], int] = {}      # (student, school, day) -> strongest rank
        self.absent: set[tuple[int, str]] = set()             # (student, day), LEAP's year
        self.rows = 0

    def _enrollments(self, tables: dict[str, Rows], scope: RunScope) -> dict[tuple[int, int], list[tuple[str, Any]]]:
        """sql_enrollment.enrollment_selects(scope, school numbers): (student, school) -> [(entry, exit)]."""
        start, end = scope.start_date.isoformat(), scope.end_date.isoformat()
        stu_cols = ["id", "student_number", "state_studentnumber", "schoolid", "entrydate", "exitdate",
                    "state_excludefromreporting"]
        students = {s["id"]: s for s in typed(tables.get("students", []), stu_cols)
                    if s["state_excludefromreporting"] == 0 and _ssid_present(s)
                    and (not scope.students or s["student_number"] in scope.students)}
        rows = [(s["id"], s["schoolid"], s["entrydate"], s["exitdate"]) for s in students.values()]
        rows += [(r["studentid"], r["schoolid"], r["entrydate"], r["exitdate"]) for r in typed(
            tables.get("reenrollments", []), ["studentid", "schoolid", "entrydate", "exitdate",
                                              "state_excludefromreporting"])
            if r["studentid"] in students and r["state_excludefromreporting"] == 0]
        out: dict[tuple[int, int], list[tuple[str, Any]]] = {}
        for sid, school, entry, exit_ in rows:
            if (school in self.school_numbers and entry is not None and entry <= end
                    and (exit_ is None or exit_ > start)):
                out.setdefault((sid, school), []).append((entry, exit_))
        return out

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
        return df.astype({c: "int64" for c in df.columns})

    def absent_days(self) -> pd.DataFrame:
        pairs = sorted(self.absent)
        return pd.DataFrame({"student_id": pd.Series([p[0] for p in pairs], dtype="int64"),
                             "att_day": pd.to_datetime(pd.Series([p[1] for p in pairs], dtype=object),
                                                       format="%Y-%m-%d")})

    def frames(self) -> dict[str, pd.DataFrame]:
        log.info("attendance: %d rows read, %d student-days counted for STAS, %d absent days for LEAP",
                 self.rows, len(self.best), len(self.absent))
        return {CATEGORY_DAYS: self.category_days(), ABSENT_DAYS: self.absent_days()}
