"""The demo district's fixed part: schools, their calendars, terms and attendance codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from calpads.demo.calendar import SchoolCalendar, day_number, iso, school_calendar
from calpads.demo.names import SCHOOL_STEMS, SUBDISTRICTS

LEA_CODE = "5699999"            # fictitious county 56 district
OTHER_DSEA = "5699998"          # a neighbouring district accountable for some special-education students
DISTRICT_NAME = "Demo Valley Unified School District"
ELEMENTARY, MIDDLE, HIGH, EXCLUDED = "E", "M", "H", "X"
LEVEL_GRADES = {ELEMENTARY: (-1, 5), MIDDLE: (6, 8), HIGH: (9, 12), EXCLUDED: (9, 12)}
# (code, description, presence, CALPADS category, share of ATTENDANCE rows)
ATTENDANCE_CODES = (
    ("A", "Absent excused", "Absent", "EXCUSED", 0.35),
    ("I", "Illness, verified", "Absent", "EXCUSED", 0.15),
    ("U", "Absent unexcused", "Absent", "UNEXCUSED", 0.28),
    ("S", "Out-of-school suspension", "Absent", "OUT_OF_SCHOOL_SUSPENSION", 0.03),
    ("ISS", "In-school suspension", "Present", "IN_SCHOOL_SUSPENSION", 0.03),
    ("IS", "Independent study, non-ADA generating", "Absent", "INDEPENDENT_STUDY", 0.04),
    ("T", "Tardy", "Present", "PRESENT", 0.10),
    ("FT", "Field trip", "Present", "PRESENT", 0.02),
    ("P", "Present", "Present", "PRESENT", 0.0),
)


@dataclass(frozen=True)
class School:
    index: int
    id: int
    school_number: int
    name: str
    code: str
    subdistrict: str
    level: str
    title1: bool
    academies: tuple[str, ...]
    calendar: SchoolCalendar

    @property
    def excluded(self) -> bool:
        return self.level == EXCLUDED


@dataclass
class District:
    first_year: int
    schools: list[School]
    sess: np.ndarray                       # (schools, 180) session day numbers
    semester_end: np.ndarray               # per school: index of the last session day before January
    by_level: dict[str, np.ndarray]        # reportable school indexes per level
    excluded_school: int
    year_first: int                        # July 1 (day number)
    year_last: int                         # June 30
    next_year_entry: int                   # pre-registered students' entry date

    @property
    def school_numbers(self) -> np.ndarray:
        return np.array([s.school_number for s in self.schools], dtype=np.int64)

    @property
    def codes(self) -> np.ndarray:
        return np.array([s.code for s in self.schools], dtype=object)

    @property
    def title1(self) -> np.ndarray:
        return np.array([s.title1 for s in self.schools])

    @property
    def levels(self) -> np.ndarray:
        return np.array([s.level for s in self.schools], dtype=object)


def school_counts(students: int) -> dict[str, int]:
    """Schools per level, sized like California schools (about 600 / 900 / 1,800 students)."""
    return {ELEMENTARY: max(5, round(students * 0.48 / 600)), MIDDLE: max(2, round(students * 0.22 / 900)),
            HIGH: max(2, round(students * 0.30 / 1800))}


def plan_district(students: int, first_year: int) -> District:
    calendars = {0: school_calendar(first_year, 0), 1: school_calendar(first_year, 1)}
    code_base = {ELEMENTARY: 6010000, MIDDLE: 6060000, HIGH: 130000}
    suffix = {ELEMENTARY: "Elementary", MIDDLE: "Middle", HIGH: "High"}
    schools: list[School] = []
    for level, count in school_counts(students).items():
        for i in range(count):
            idx = len(schools)
            stem = SCHOOL_STEMS[(idx * 7 + i) % len(SCHOOL_STEMS)]
            round_no = i // len(SCHOOL_STEMS)
            name = f"{stem} {suffix[level]}" + (f" {round_no + 1}" if round_no else "")
            academies = (f"{11000 + 10 * i:05d}", f"{11005 + 10 * i:05d}") if level == HIGH else ()
            schools.append(School(
                index=idx, id=idx + 1, school_number=100 + 10 * idx, name=name,
                code=f"{code_base[level] + 37 * (i + 1):07d}", subdistrict=SUBDISTRICTS[idx % len(SUBDISTRICTS)],
                level=level, title1=(level == ELEMENTARY and i % 3 != 1) or (level == MIDDLE and i == 0),
                academies=academies, calendar=calendars[1 if level == ELEMENTARY else 0],
            ))
    idx = len(schools)
    schools.append(School(idx, idx + 1, 100 + 10 * idx, "Demo Valley Adult Transition Program", "0109991",
                          SUBDISTRICTS[0], EXCLUDED, False, (), calendars[0]))
    sess = np.stack([s.calendar.session_days for s in schools])
    jan1 = day_number(date(first_year + 1, 1, 1))
    semester_end = (sess < jan1).sum(axis=1) - 1
    by_level = {lv: np.array([s.index for s in schools if s.level == lv], dtype=np.int64)
                for lv in (ELEMENTARY, MIDDLE, HIGH)}
    next_entry = date(first_year + 1, 8, 12)
    return District(first_year, schools, sess, semester_end, by_level, idx,
                    day_number(date(first_year, 7, 1)), day_number(date(first_year + 1, 6, 30)),
                    day_number(next_entry + timedelta(days=(2 - next_entry.weekday()) % 7)))


def district_rows(d: District, academic_year: str) -> dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """The fixed tables as (columns, rows)."""
    prefs = [(1, "districtnumber", LEA_CODE, 0), (2, "districtname", DISTRICT_NAME, 0),
             (3, "schoolyear", academic_year, 0)]
    schools = [(s.id, s.school_number, s.name, s.code, s.subdistrict, int(s.excluded)) for s in d.schools]
    terms, calendar, codes = [], [], []
    year_id = d.first_year - 1990
    for s in d.schools:
        days = s.calendar.session_days
        first, last, sem = iso(days[[0, -1, d.semester_end[s.index]]])
        s2_first = iso(days[[d.semester_end[s.index] + 1]])[0]
        base = len(terms)
        terms += [(base + 1, s.school_number, year_id, first, last, 1),
                  (base + 2, s.school_number, year_id, first, sem, 0),
                  (base + 3, s.school_number, year_id, s2_first, last, 0)]
        all_iso = iso(s.calendar.all_days)
        start_id = s.index * len(all_iso)
        calendar += [(start_id + i + 1, s.school_number, day, int(flag))
                     for i, (day, flag) in enumerate(zip(all_iso, s.calendar.in_session, strict=True))]
        codes += [(attendance_code_id(s.index, k), s.school_number, c[0], c[1], c[2], c[3])
                  for k, c in enumerate(ATTENDANCE_CODES)]
    return {
        "PREFS": (("ID", "NAME", "VALUE", "SCHOOLID"), prefs),
        "SCHOOLS": (("ID", "SCHOOL_NUMBER", "NAME", "ALTERNATE_SCHOOL_NUMBER", "SUBDISTRICT",
                     "STATE_EXCLUDEFROMREPORTING"), schools),
        "TERMS": (("ID", "SCHOOLID", "YEARID", "FIRSTDAY", "LASTDAY", "ISYEARREC"), terms),
        "CALENDAR_DAY": (("ID", "SCHOOLID", "DATE_VALUE", "INSESSION"), calendar),
        "ATTENDANCE_CODE": (("ID", "SCHOOLID", "ATT_CODE", "DESCRIPTION", "PRESENCE_STATUS_CD", "CALPADS_CATEGORY"),
                            codes),
    }


def attendance_code_id(school_index: int, k: int) -> int:
    return school_index * 10 + k + 1
