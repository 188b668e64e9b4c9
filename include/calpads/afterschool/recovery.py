"""Attendance recovery (calpads-reference.md §4; EC 46211): recovered days per student, and who can
still recover days and is close to chronic absence.

Rules applied (sources in calpads-reference.md §4):
- AR minutes add up across sessions and days toward one day per the grade's minimum schoolday
  minutes (K 180, 1-3 230, 4-12 240; TK unconfirmed: K's 180 is used); time counts in whole
  ``increment`` minutes (hourly by default) per calendar day;
- one calendar day of AR never earns more than one day (a day's minutes are capped at the minimum);
- recovered days <= the lesser of 10 (per student across the LEA) and the recoverable absences of the
  year; absences for suspension or lack of immunization are not recoverable; days may be banked
  (AR before the absence counts), so the whole year is compared, not date by date.

``recovered_days`` is the one function the STAS builder calls for 13.24 (Attendance Recovery Days).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

AR_CAP_DAYS = 10
DEFAULT_INCREMENT = 60
CHRONIC_THRESHOLD = 0.10
AT_RISK_MARGIN = 0.02


def minimum_day_minutes(grade_level: pd.Series) -> pd.Series:
    """EC 46112/46113/46117/46141 minimum schoolday minutes by grade (-1 = TK, 0 = K)."""
    g = pd.to_numeric(grade_level, errors="coerce")
    return pd.Series(np.select([g <= 0, g <= 3], [180, 230], 240), index=grade_level.index).astype("int64")


def recovered_days(ar_sessions: pd.DataFrame, absences: pd.DataFrame, grades: pd.DataFrame, *,
                   cap: int = AR_CAP_DAYS, increment: int = DEFAULT_INCREMENT) -> pd.DataFrame:
    """AR days per student (STAS 13.24).

    ar_sessions: student_id, session_date, minutes (AR program only); absences: student_id, date,
    recoverable (bool); grades: student_id, grade_level. Returns one row per student with AR sessions
    or absences: student_id, ar_days_attended, ar_minutes, earned_days, recoverable_absences,
    recovered_days (0..cap, never more than recoverable_absences)."""
    ar = ar_sessions.assign(student_id=pd.to_numeric(ar_sessions["student_id"]).astype("int64"),
                            day=ar_sessions["session_date"].astype(str).str[:10],
                            minutes=pd.to_numeric(ar_sessions["minutes"], errors="coerce").fillna(0))
    per_day = ar.groupby(["student_id", "day"], sort=False)["minutes"].sum().reset_index()
    per_day["minutes"] = (per_day["minutes"] // increment) * increment
    g = grades.dropna(subset=["student_id"]).drop_duplicates("student_id", keep="last")
    g = g.assign(student_id=g["student_id"].astype("int64"), min_day=minimum_day_minutes(g["grade_level"]))
    per_day = per_day.merge(g[["student_id", "min_day"]], on="student_id", how="left")
    per_day["min_day"] = per_day["min_day"].fillna(240).astype("int64")
    per_day["credited"] = np.minimum(per_day["minutes"], per_day["min_day"])
    by_student = per_day.groupby("student_id").agg(ar_days_attended=("day", "nunique"), ar_minutes=("credited", "sum"),
                                                   min_day=("min_day", "first"))
    by_student["earned_days"] = (by_student["ar_minutes"] // by_student["min_day"]).astype("int64")

    ab = absences[absences["recoverable"].astype(bool)]
    ab = ab.assign(student_id=pd.to_numeric(ab["student_id"]).astype("int64"))
    recoverable = ab.drop_duplicates(["student_id", "date"]).groupby("student_id").size().rename("recoverable_absences")
    out = by_student.join(recoverable, how="outer").fillna(0)
    out = out.astype({"ar_days_attended": "int64", "ar_minutes": "int64", "earned_days": "int64",
                      "recoverable_absences": "int64"})
    out["recovered_days"] = np.minimum(np.minimum(out["earned_days"], cap), out["recoverable_absences"]).astype("int64")
    return out.drop(columns="min_day").reset_index()[
        ["student_id", "ar_days_attended", "ar_minutes", "earned_days", "recoverable_absences", "recovered_days"]]


def expected_days(enrollments: pd.DataFrame, calendar: pd.DataFrame, as_of: date) -> pd.Series:
    """In-session days of each student's enrollments up to as_of (per student)."""
    limit = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    counts = []
    for school, days in calendar.groupby("schoolid")["date"]:
        arr = np.sort(days.to_numpy(dtype="datetime64[ns]"))
        enr = enrollments[enrollments["schoolid"] == school]
        if enr.empty:
            continue
        end = enr["exitdate"].fillna(limit).where(enr["exitdate"].fillna(limit) < limit, limit)
        n = np.searchsorted(arr, end.to_numpy(dtype="datetime64[ns]")) - \
            np.searchsorted(arr, enr["entrydate"].to_numpy(dtype="datetime64[ns]"))
        counts.append(pd.Series(np.maximum(n, 0), index=enr["student_id"].astype("int64").to_numpy()))
    if not counts:
        return pd.Series(dtype="int64")
    return pd.concat(counts).groupby(level=0).sum()


def recovery_candidates(*, recovered: pd.DataFrame, absences: pd.DataFrame, enrollments: pd.DataFrame,
                        calendar: pd.DataFrame, students: pd.DataFrame, as_of: date,
                        threshold: float = CHRONIC_THRESHOLD, margin: float = AT_RISK_MARGIN,
                        cap: int = AR_CAP_DAYS) -> pd.DataFrame:
    """Students at or near chronic absence (absence rate >= threshold - margin) who can still recover days,
    for the afterschool director (Local Student ID only)."""
    expected = expected_days(enrollments, calendar, as_of).rename("expected_days")
    ab = absences[absences["date"] <= pd.Timestamp(as_of)]
    ab = ab.assign(student_id=pd.to_numeric(ab["student_id"]).astype("int64")).drop_duplicates(["student_id", "date"])
    absent = ab.groupby("student_id").size().rename("absent_days")
    rec = recovered.set_index("student_id")[["recoverable_absences", "recovered_days"]]
    df = pd.concat([expected, absent], axis=1).join(rec, how="left").fillna(0).astype("int64")
    df = df[df["expected_days"] > 0]
    df["absence_rate"] = (df["absent_days"] / df["expected_days"]).round(4)
    df["can_still_recover"] = (np.minimum(cap, df["recoverable_absences"]) - df["recovered_days"]).clip(lower=0)
    df["rate_if_all_recovered"] = ((df["absent_days"] - df["recovered_days"] - df["can_still_recover"])
                                   / df["expected_days"]).round(4)
    df["status"] = np.where(df["absence_rate"] >= threshold, "chronic", "at risk")
    df["recovery_brings_below_threshold"] = df["rate_if_all_recovered"] < threshold
    out = df[(df["absence_rate"] >= threshold - margin) & (df["can_still_recover"] > 0)].reset_index(
        names="student_id")
    numbers = students.dropna(subset=["student_id"]).drop_duplicates("student_id")
    out["local_student_id"] = out["student_id"].map(dict(zip(numbers["student_id"].astype("int64"),
                                                             numbers["student_number"], strict=True)))
    cols = ["local_student_id", "status", "expected_days", "absent_days", "absence_rate", "recoverable_absences",
            "recovered_days", "can_still_recover", "rate_if_all_recovered", "recovery_brings_below_threshold"]
    return out.sort_values(["absence_rate", "local_student_id"], ascending=[False, True])[["student_id", *cols]] \
        .reset_index(drop=True)
