"""The afterschool platform's CSV exports (contracts README §1) for the demo district.

``attendance.csv``: student_number,ssid,school_code,session_date,minutes,program
``registrations.csv``: student_number,ssid,program,registration_date

About 20% of TK-8 students are registered in ELO-P, ASES or 21CCLC (some never
attend). Sessions are on in-session days of the student's enrollments, mostly
not on days the student was absent (a few are), plus a few Saturday sessions,
summer ELO-P sessions in July (before school starts, outside every enrollment:
valid for registered students; ~15% of attending students, registered in June),
a few attendance-recovery (AR) sessions for students with absences, and planted
faults the afterschool import holds back: a couple of rows for student numbers
the SIS does not know, and two students with two conflicting ELO-P sessions on
one day (the same date twice, different minutes). ssid is blank for students
without one and, as platforms do, for ~5% of the others.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd

from calpads.demo.calendar import iso
from calpads.maintenance import private_dirs
from calpads.private_files import open_private

if TYPE_CHECKING:
    from calpads.demo.district import District
    from calpads.demo.generator import Chunk

ATTENDANCE_HEADER = ("student_number", "ssid", "school_code", "session_date", "minutes", "program")
REGISTRATION_HEADER = ("student_number", "ssid", "program", "registration_date")
PROGRAMS = np.array(["ELO-P", "ASES", "21CCLC"], dtype=object)
MINUTES = np.array([60, 90, 120, 150, 180])
UNKNOWN_STUDENTS = ("9000001", "9000002")
CONFLICTING_SAME_DAY = 2        # students given a second, different ELO-P session on one of their days
SUMMER_SHARE = 0.15             # attending registered students who also come to summer ELO-P in July
SUMMER_MINUTES = 240


def weekday(days: np.ndarray) -> np.ndarray:
    """Mon=0 for day numbers (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def _private_open(path: Path) -> TextIO:
    return open_private(path, "w", newline="")


class Export:
    def __init__(self, folder: Path, district: District):
        private_dirs(folder)     # the export carries SSIDs: owner-only, like the platform's drop folder should be
        self.district = district
        self._att_file = _private_open(folder / "attendance.csv")
        self._reg_file = _private_open(folder / "registrations.csv")
        self.att = csv.writer(self._att_file, lineterminator="\n")
        self.reg = csv.writer(self._reg_file, lineterminator="\n")
        self.att.writerow(ATTENDANCE_HEADER)
        self.reg.writerow(REGISTRATION_HEADER)
        self.sessions = 0
        self.registrations = 0

    def close(self) -> None:
        self._att_file.close()
        self._reg_file.close()

    def add_chunk(self, ch: Chunk, absences: tuple[np.ndarray, np.ndarray] | None, rng: np.random.Generator,
                  first_chunk: bool) -> None:
        d = self.district
        n = len(ch.ids)
        number = d.student_numbers(ch.ids)
        ssid = np.where((rng.random(n) < 0.05) | pd.isna(ch.ssid), "", ch.ssid).astype(object)
        has_seg = np.bincount(ch.seg_stu, minlength=n) > 0
        eligible = has_seg & (ch.grade <= 8) & (ch.school != d.excluded_school)
        registered = eligible & (rng.random(n) < 0.20)
        program = PROGRAMS[rng.choice(3, size=n, p=[0.6, 0.3, 0.1])]
        attend_rate = np.where(rng.random(n) < 0.10, 0.0, rng.uniform(0.3, 0.9, n))

        first_seg = np.full(n, -1, dtype=np.int64)
        seg0 = np.flatnonzero(ch.seg_no == 0)
        first_seg[ch.seg_stu[seg0]] = seg0
        reg_idx = np.flatnonzero(registered)
        fs = first_seg[reg_idx]
        reg_day = d.sess[ch.seg_school[fs], ch.seg_entry[fs]] - rng.integers(0, 15, len(reg_idx))
        # Summer ELO-P (July, before the first school day): students registered in June for it.
        summer = registered & (attend_rate > 0) & (program == "ELO-P") & (rng.random(n) < SUMMER_SHARE)
        reg_day = np.where(summer[reg_idx], d.year_first - rng.integers(1, 16, len(reg_idx)), reg_day)
        for i, day in zip(reg_idx.tolist(), iso(reg_day).tolist(), strict=True):
            self.reg.writerow((number[i], ssid[i], program[i], day))
        self.registrations += len(reg_idx)

        # After-school sessions on in-session days of each enrollment of a registered student.
        seg_ok = registered[ch.seg_stu]
        days = np.where(seg_ok, ch.seg_last - ch.seg_entry + 1, 0)
        k = rng.binomial(days, attend_rate[ch.seg_stu])
        seg = np.repeat(np.arange(len(days)), k)
        pos = ch.seg_entry[seg] + (rng.random(len(seg)) * days[seg]).astype(np.int64)
        key = np.unique(seg * 256 + pos)
        if absences is not None and len(absences[0]):
            on_absent_day = np.isin(key, absences[0] * 256 + absences[1])
            key = key[~on_absent_day | (rng.random(len(key)) < 0.1)]   # a few sessions on days absent
        seg, pos = key // 256, key % 256
        school = ch.seg_school[seg]
        parts = [(ch.seg_stu[seg], school, d.sess[school, pos], rng.choice(MINUTES, size=len(seg)),
                  program[ch.seg_stu[seg]])]

        # A few Saturday sessions (3% of attending students).
        sat_seg = np.flatnonzero(seg_ok & (attend_rate[ch.seg_stu] > 0) & (rng.random(len(days)) < 0.03))
        parts.append(self._saturdays(ch, sat_seg, rng, program[ch.seg_stu[sat_seg]], 240))
        parts.append(self._summer(ch, np.flatnonzero(summer), first_seg, rng))
        # Attendance recovery for some students with absences: at most as many sessions as absences (<= 3).
        if absences is not None and len(absences[0]):
            segs_absent, counts = np.unique(absences[0], return_counts=True)
            pick = rng.random(len(segs_absent)) < 0.05
            ar_seg = np.repeat(segs_absent[pick], np.minimum(counts[pick], rng.integers(1, 4, pick.sum())))
            parts.append(self._saturdays(ch, ar_seg, rng, np.full(len(ar_seg), "AR", dtype=object), 240))

        stu = np.concatenate([p[0] for p in parts])
        school = np.concatenate([p[1] for p in parts])
        day = np.concatenate([p[2] for p in parts])
        minutes = np.concatenate([p[3] for p in parts])
        prog = np.concatenate([p[4] for p in parts])
        order = np.lexsort((prog, day, stu))
        stu, school, day, minutes, prog = stu[order], school[order], day[order], minutes[order], prog[order]
        # A Saturday drawn twice for one student and program is one session.
        keep = np.ones(len(stu), dtype=bool)
        keep[1:] = (stu[1:] != stu[:-1]) | (day[1:] != day[:-1]) | (prog[1:] != prog[:-1])
        stu, school, day, minutes, prog = stu[keep], school[keep], day[keep], minutes[keep], prog[keep]
        rows: list[tuple[Any, ...]] = list(zip(number[stu].tolist(), ssid[stu].tolist(), d.codes[school].tolist(),
                                               iso(day).tolist(), minutes.tolist(), prog.tolist(), strict=True))
        if first_chunk:
            rows += self._conflicting(rows)
            for j, unknown in enumerate(UNKNOWN_STUDENTS):
                s = d.schools[j % len(d.by_level["E"])]
                rows.append((unknown, "", s.code, iso(s.calendar.session_days[[20 + j]])[0], 120, "ELO-P"))
        self.att.writerows(rows)
        self.sessions += len(rows)

    def _summer(self, ch: Chunk, students: np.ndarray, first_seg: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, ...]:
        """3-10 weekdays of July (first year) at the school of the student's first enrollment, before it starts."""
        d = self.district
        july = np.arange(d.year_first, d.year_first + 31)
        july = july[weekday(july) < 5]
        school = ch.seg_school[first_seg[students]]
        start = d.sess[school, ch.seg_entry[first_seg[students]]]
        k = rng.integers(3, 11, len(students))
        stu = np.repeat(students, k)
        day = july[rng.integers(0, len(july), len(stu))]
        ok = day < np.repeat(start, k)
        return (stu[ok], np.repeat(school, k)[ok], day[ok], np.full(ok.sum(), SUMMER_MINUTES),
                np.full(ok.sum(), "ELO-P", dtype=object))

    @staticmethod
    def _conflicting(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """A second ELO-P row on a day a student already has one, with other minutes (both are held back)."""
        out: list[tuple[Any, ...]] = []
        seen: set[Any] = set()
        for row in rows:
            if len(out) == CONFLICTING_SAME_DAY:
                break
            if row[5] == "ELO-P" and row[0] not in seen and row[4] != SUMMER_MINUTES:
                seen.add(row[0])
                out.append((*row[:4], row[4] + 15, row[5]))
        return out

    def _saturdays(self, ch: Chunk, segs: np.ndarray, rng: np.random.Generator, program: np.ndarray,
                   minutes: int) -> tuple[np.ndarray, ...]:
        """One Saturday inside each given enrollment."""
        d = self.district
        school = ch.seg_school[segs]
        first = d.sess[school, ch.seg_entry[segs]]
        last = d.sess[school, ch.seg_last[segs]]
        first_sat = first + (5 - weekday(first)) % 7
        weeks = np.maximum((last - first_sat) // 7 + 1, 1)
        day = first_sat + 7 * (rng.random(len(segs)) * weeks).astype(np.int64)
        ok = day <= last
        return (ch.seg_stu[segs][ok], school[ok], day[ok], np.full(ok.sum(), minutes), program[ok])
