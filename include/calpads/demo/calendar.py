"""A California school-year calendar: 180 instructional days from mid-August,
weekends, federal holidays, Thanksgiving week, winter break and spring break off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

INSTRUCTIONAL_DAYS = 180
EPOCH = date(1970, 1, 1)


def day_number(d: date) -> int:
    """Days since 1970-01-01 (numpy datetime64[D] integer)."""
    return (d - EPOCH).days


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based) weekday (Mon=0) of a month; n=-1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = (date(year, month + 1, 1) if month < 12 else date(year + 1, 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _week(monday: date) -> list[date]:
    return [monday + timedelta(days=i) for i in range(5)]


def _observed(d: date) -> date:
    return d - timedelta(days=1) if d.weekday() == 5 else d + timedelta(days=1) if d.weekday() == 6 else d


def holidays(first_year: int) -> set[date]:
    y, n = first_year, first_year + 1
    days = {
        nth_weekday(y, 9, 0, 1),                       # Labor Day
        _observed(date(y, 11, 11)),                    # Veterans Day
        nth_weekday(n, 1, 0, 3),                       # Martin Luther King Jr. Day
        nth_weekday(n, 2, 0, 3),                       # Presidents' Day
        nth_weekday(n, 5, 0, -1),                      # Memorial Day
        _observed(date(n, 6, 19)),                     # Juneteenth
        _observed(date(n, 1, 1)),                      # New Year's Day
    }
    thanksgiving = nth_weekday(y, 11, 3, 4)
    days.update(_week(thanksgiving - timedelta(days=3)))
    dec22 = date(y, 12, 22)
    winter = dec22 - timedelta(days=dec22.weekday())   # the Monday of the week of Dec 22, two weeks
    days.update(_week(winter) + _week(winter + timedelta(days=7)))
    days.update(date(y, 12, 24) + timedelta(days=i) for i in range(9))  # Dec 24 - Jan 1 whatever the weekday
    spring = nth_weekday(n, 4, 0, 1)                   # first full week of April
    days.update(_week(spring))
    return days


@dataclass(frozen=True)
class SchoolCalendar:
    first_year: int
    start_offset: int
    all_days: np.ndarray        # day numbers Jul 1 .. Jun 30
    in_session: np.ndarray      # 0/1 per day of all_days
    session_days: np.ndarray    # the INSTRUCTIONAL_DAYS day numbers, ascending

    @property
    def first_day(self) -> int:
        return int(self.session_days[0])

    @property
    def last_day(self) -> int:
        return int(self.session_days[-1])


def school_calendar(first_year: int, start_offset: int = 0) -> SchoolCalendar:
    """School starts on the second Wednesday of August plus start_offset weekdays."""
    off = holidays(first_year)
    start = nth_weekday(first_year, 8, 2, 2)
    to_skip = start_offset
    while to_skip > 0:
        start += timedelta(days=1)
        if start.weekday() < 5:
            to_skip -= 1
    year_first, year_last = date(first_year, 7, 1), date(first_year + 1, 6, 30)
    sessions: list[date] = []
    d = start
    while len(sessions) < INSTRUCTIONAL_DAYS:
        if d.weekday() < 5 and d not in off:
            sessions.append(d)
        d += timedelta(days=1)
    if sessions[-1] > year_last:  # cannot happen with a mid-August start; guards a future edit
        raise ValueError("the calendar does not fit in the academic year")
    all_days = np.arange(day_number(year_first), day_number(year_last) + 1, dtype=np.int64)
    session_days = np.array([day_number(s) for s in sessions], dtype=np.int64)
    in_session = np.isin(all_days, session_days).astype(np.int64)
    return SchoolCalendar(first_year, start_offset, all_days, in_session, session_days)


def iso(days: np.ndarray) -> np.ndarray:
    """Day numbers to an object array of 'YYYY-MM-DD' strings."""
    return np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]")).astype(object)
