"""Enrollment logic shared by every builder: one definition of an enrollment's last day
and of "enrolled in the report range" (the Student Criteria of PowerSchool's Student Program Records
Report; docs/senr-stas-leap.md).

SENR publishes these enrollments, STAS counts their in-session days, and SPRG's
cross-file ctx_ columns (``ctx_enrolled_at_school``, ``ctx_enrollment_covers_range``,
``ctx_enrollment_exit_date``) are computed from the same ``enrollment_last_days`` and
``in_report_range``, so a program's matching enrollment is the one SENR sends.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calpads.dates import iso_dates, sis_days


def enrollment_last_days(enrollments: pd.DataFrame, calendar: pd.DataFrame) -> pd.Series:
    """PowerSchool's EXITDATE is exclusive: the enrollment's last day is the last
    in-session day of its school before EXITDATE (or EXITDATE - 1 when the
    school has no calendar). NaT for an open enrollment.

    enrollments: schoolid, exitdate ('YYYY-MM-DD' text); calendar: schoolid, date_value (in-session days). An exit
    or a calendar day that is no real date (calpads.dates.sis_days) counts as none: callers hold such enrollments
    back first (calpads.extracts.not_extracted.readable_dates)."""
    exits = sis_days(enrollments["exitdate"])
    last = pd.Series(pd.NaT, index=enrollments.index, dtype="datetime64[ns]")
    has_exit = exits.notna()
    if not has_exit.any():
        return last
    left = pd.DataFrame({"row": enrollments.index[has_exit], "schoolid": enrollments.loc[has_exit, "schoolid"].astype(
        "int64"), "exit": exits[has_exit]}).sort_values("exit")
    cal = pd.DataFrame({"schoolid": calendar["schoolid"].astype("int64"),
                        "day": sis_days(calendar["date_value"])}).dropna()
    cal = cal.sort_values("day")
    matched = pd.merge_asof(left, cal, left_on="exit", right_on="day", by="schoolid",
                            allow_exact_matches=False, direction="backward")
    day = matched["day"].fillna(matched["exit"] - pd.Timedelta(days=1))
    last.loc[matched["row"].to_numpy()] = day.to_numpy()
    return last


def in_report_range(entry: pd.Series, last_day: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Seed: entry on or before the report end date; exit (last day) blank or after the report start date."""
    return (entry <= end) & (last_day.isna() | (last_day > start))


def selected_enrollments(enrollments: pd.DataFrame, calendar: pd.DataFrame, start: pd.Timestamp,
                         end: pd.Timestamp) -> pd.DataFrame:
    """The enrollments in the report range, with ``entry`` and ``last_day`` (datetime64) added."""
    enr = enrollments.copy()
    enr["entry"] = iso_dates(enr["entrydate"])
    enr["last_day"] = enrollment_last_days(enr, calendar)
    return enr[in_report_range(enr["entry"], enr["last_day"], start, end)].reset_index(drop=True)


def grade_code(grade: pd.Series) -> pd.Series:
    """PowerSchool GRADE_LEVEL -> CALPADS Grade Level Code: -1 TK, 0 KN, 1..12 '01'..'12'; else the number as
    text (the gate's code-set rule reports it); blank stays blank."""
    g = pd.to_numeric(grade, errors="coerce")
    out = g.map(lambda v: None if pd.isna(v) else ("TK" if v == -1 else "KN" if v == 0 else
                                                   f"{int(v):02d}" if 1 <= v <= 12 else str(int(v))))
    return out.astype("object")


def in_session_counts(calendar: pd.DataFrame, schoolid: pd.Series, first: pd.Series, last: pd.Series) -> np.ndarray:
    """Number of in-session days of each row's school in [first, last] (datetime64; NaT = 0 days).

    Vectorised per school with searchsorted over the school's sorted in-session days, so a
    district's enrollments are counted without expanding them into one row per day."""
    out = np.zeros(len(schoolid), dtype=np.int64)
    cal = pd.DataFrame({"schoolid": calendar["schoolid"].astype("int64"),
                        "day": sis_days(calendar["date_value"])}).dropna()
    sid = schoolid.astype("int64").to_numpy()
    lo = first.astype("datetime64[ns]").to_numpy()
    hi = last.astype("datetime64[ns]").to_numpy()
    for school, days in cal.groupby("schoolid")["day"]:
        rows = np.flatnonzero(sid == school)
        if not len(rows):
            continue
        d = np.sort(days.to_numpy())
        a, b = lo[rows], hi[rows]
        ok = ~(np.isnat(a) | np.isnat(b))
        n = np.searchsorted(d, b, side="right") - np.searchsorted(d, a, side="left")
        out[rows] = np.where(ok, np.maximum(n, 0), 0)
    return out


def merged_intervals(frame: pd.DataFrame, keys: list[str], first: str, last: str) -> pd.DataFrame:
    """Overlapping [first, last] day intervals merged per key (e.g. a student's enrollments at one school),
    so that a day covered twice is counted once."""
    df = frame[[*keys, first, last]].sort_values([*keys, first], kind="stable").reset_index(drop=True)
    if df.empty:
        return df
    same = (df[keys].shift() == df[keys]).all(axis=1)
    run_max = df.groupby(keys, sort=False)[last].cummax()
    prev_max = run_max.groupby([df[k] for k in keys], sort=False).shift()
    new_block = ~same | (df[first] > prev_max + pd.Timedelta(days=1)) | prev_max.isna()
    block = new_block.cumsum()
    out = df.groupby(block).agg({**{k: "first" for k in keys}, first: "min", last: "max"})
    return out.reset_index(drop=True)
