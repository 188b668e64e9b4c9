"""The demo district's fixed part: schools, their calendars, terms and attendance codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from calpads.demo.calendar import SchoolCalendar, day_number, iso, school_calendar
from calpads.demo.names import SCHOOL_STEMS, SUBDISTRICTS

LEA_CODE = "5699999"            # fictitious county 56 district: the default demo LEA
OTHER_DSEA = "5699998"          # a neighbouring district accountable for some special-education students
DISTRICT_NAME = "Demo Valley Unified School District"
# Another demo LEA (lea_code other than LEA_CODE): its school codes are the LEA code's last four digits and a
# three-digit serial in these ranges (per level; the excluded program is 999), its local student ids start
# with the LEA code, so that two demo LEAs hold no school code and no student of each other's.
SERIAL_FIRST = {"E": 1, "M": 500, "H": 700}
SERIAL_LAST = {"E": 499, "M": 699, "H": 899}
EXCLUDED_SERIAL = 999
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


def check_lea_code(lea_code: str) -> str:
    """A Reporting LEA code is 7 digits (the county and district part of the CDS code)."""
    if not (isinstance(lea_code, str) and len(lea_code) == 7 and lea_code.isdigit()):
        raise ValueError(f"lea_code must be a 7-digit CDS county-district code, got {lea_code!r}")
    return lea_code


def other_dsea(lea_code: str) -> str:
    """A neighbouring LEA's code for the special-education accountability (DSEA) of some students."""
    if lea_code == LEA_CODE:
        return OTHER_DSEA
    return f"{int(lea_code) - 1:07d}" if int(lea_code) % 10 else f"{int(lea_code) + 1:07d}"


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
    lea_code: str = LEA_CODE

    @property
    def default_lea(self) -> bool:
        return self.lea_code == LEA_CODE

    @property
    def name(self) -> str:
        return DISTRICT_NAME if self.default_lea else f"Demo District {self.lea_code}"

    @property
    def other_dsea(self) -> str:
        return other_dsea(self.lea_code)

    @property
    def ssid_salt(self) -> int:
        """Added to the SSID offset: 0 for the default LEA (its SSIDs as always), the LEA code otherwise."""
        return 0 if self.default_lea else int(self.lea_code) * 104_729

    def student_numbers(self, ids: np.ndarray) -> np.ndarray:
        """Local student ids (STUDENT_NUMBER) of student ids: 100,000 + id for the default LEA; the LEA code
        followed by the 7-digit 100,000 + id otherwise (up to 14 digits; the layouts allow 15)."""
        base = 0 if self.default_lea else int(self.lea_code) * 10_000_000
        return (ids + 100_000 + base).astype(str).astype(object)

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


def school_code(lea_code: str, level: str, i: int) -> str:
    """The 7-digit CDS school code of the i-th school (from 0) of a level."""
    if lea_code == LEA_CODE:
        code_base = {ELEMENTARY: 6010000, MIDDLE: 6060000, HIGH: 130000}
        return f"{code_base[level] + 37 * (i + 1):07d}"
    serial = SERIAL_FIRST[level] + i
    if serial > SERIAL_LAST[level]:
        raise ValueError(f"too many students for a demo LEA other than {LEA_CODE}: at most "
                         f"{SERIAL_LAST[level] - SERIAL_FIRST[level] + 1} schools per level")
    return f"{lea_code[-4:]}{serial:03d}"


def plan_district(students: int, first_year: int, lea_code: str = LEA_CODE) -> District:
    check_lea_code(lea_code)
    calendars = {0: school_calendar(first_year, 0), 1: school_calendar(first_year, 1)}
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
                code=school_code(lea_code, level, i), subdistrict=SUBDISTRICTS[idx % len(SUBDISTRICTS)],
                level=level, title1=(level == ELEMENTARY and i % 3 != 1) or (level == MIDDLE and i == 0),
                academies=academies, calendar=calendars[1 if level == ELEMENTARY else 0],
            ))
    idx = len(schools)
    excluded_code = "0109991" if lea_code == LEA_CODE else f"{lea_code[-4:]}{EXCLUDED_SERIAL:03d}"
    schools.append(School(idx, idx + 1, 100 + 10 * idx, "Demo Valley Adult Transition Program", excluded_code,
                          SUBDISTRICTS[0], EXCLUDED, False, (), calendars[0]))
    sess = np.stack([s.calendar.session_days for s in schools])
    jan1 = day_number(date(first_year + 1, 1, 1))
    semester_end = (sess < jan1).sum(axis=1) - 1
    by_level = {lv: np.array([s.index for s in schools if s.level == lv], dtype=np.int64)
                for lv in (ELEMENTARY, MIDDLE, HIGH)}
    next_entry = date(first_year + 1, 8, 12)
    return District(first_year, schools, sess, semester_end, by_level, idx,
                    day_number(date(first_year, 7, 1)), day_number(date(first_year + 1, 6, 30)),
                    day_number(next_entry + timedelta(days=(2 - next_entry.weekday()) % 7)), lea_code)


def district_rows(d: District, academic_year: str) -> dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """The fixed tables as (columns, rows)."""
    prefs = [(1, "districtnumber", d.lea_code, 0), (2, "districtname", d.name, 0),
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
