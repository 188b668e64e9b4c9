"""Reconcile the afterschool platform with the SIS, per student per month (the guide's "spot-check
source data against SIS data ... If your afterschool platform shows 15 days in October, does the
SIS show the same 15?"), for every student.

A day is a calendar date with any afterschool session (several sessions or programs count once).
Discrepancy kinds (day counts, per student and month):
- ``missing_in_sis``: a platform day the SIS participation table does not have;
- ``extra_in_sis``: a SIS participation day the platform does not have (e.g. deleted in the platform);
- ``absent_in_sis``: a platform day on which the SIS has the student absent (daily attendance);
- ``not_enrolled``: a platform day no SIS enrollment of the student covers.
Students the SIS does not know never reach this step: the gate holds them back (AS-KNOWN-STUDENT)
and the summary counts them as ``unknown_student``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("missing_in_sis", "extra_in_sis", "absent_in_sis", "not_enrolled")
COLUMNS = ["local_student_id", "month", "platform_days", "sis_days", *KINDS, "status"]


def _parse_days(dates: pd.Series) -> np.ndarray:
    """'YYYY-MM-DD...' text -> datetime64; each distinct date parsed once (a year has ~365)."""
    codes, uniques = pd.factorize(dates.astype(str).str[:10])
    parsed = pd.to_datetime(pd.Series(uniques, dtype="object"), format="%Y-%m-%d", errors="coerce").to_numpy()
    out = parsed[codes] if len(uniques) else np.array([], dtype="datetime64[ns]")
    return np.where(codes < 0, np.datetime64("NaT"), out).astype("datetime64[ns]")


def _days(student_id: pd.Series, dates: pd.Series) -> pd.DataFrame:
    d = pd.DataFrame({"student_id": pd.to_numeric(student_id).astype("int64").to_numpy(),
                      "day": _parse_days(dates)})
    return d.dropna().drop_duplicates()


def reconcile(platform: pd.DataFrame, sis_participation: pd.DataFrame, enrollments: pd.DataFrame,
              absences: pd.DataFrame, students: pd.DataFrame) -> pd.DataFrame:
    """platform: student_id, session_date; sis_participation: studentid, participation_date;
    enrollments: student_id, entrydate, exitdate; absences: student_id, date; students: student_id,
    student_number. One row per student and month with any afterschool day on either side."""
    p = _days(platform["student_id"], platform["session_date"])
    s = _days(sis_participation["studentid"], sis_participation["participation_date"])
    both = p.merge(s, on=["student_id", "day"], how="outer", indicator=True)
    both["in_platform"] = both["_merge"] != "right_only"
    both["in_sis"] = both["_merge"] != "left_only"

    absent = pd.DataFrame({"student_id": pd.to_numeric(absences["student_id"]).astype("int64").to_numpy(),
                           "day": pd.to_datetime(absences["date"]).to_numpy(dtype="datetime64[ns]")}
                          ).dropna().drop_duplicates().assign(absent=True)
    both = both.merge(absent, on=["student_id", "day"], how="left")
    both["absent"] = both["absent"].fillna(False).astype(bool) & both["in_platform"]

    # covered by an enrollment: merge platform days with the student's (few) enrollments
    plat = both[both["in_platform"]][["student_id", "day"]].reset_index()
    enr = enrollments[["student_id", "entrydate", "exitdate"]].dropna(subset=["student_id", "entrydate"])
    enr = enr.assign(student_id=enr["student_id"].astype("int64"))
    m = plat.merge(enr, on="student_id", how="inner")
    ok = (m["entrydate"] <= m["day"]) & (m["exitdate"].isna() | (m["day"] < m["exitdate"]))
    covered = np.zeros(len(both), dtype=bool)
    covered[both.index.get_indexer(m.loc[ok, "index"].unique())] = True
    both["not_enrolled"] = both["in_platform"] & ~covered

    month = both["day"].to_numpy(dtype="datetime64[M]")
    codes, uniques = pd.factorize(month)
    both["month"] = np.array([str(u)[:7] for u in uniques], dtype=object)[codes] if len(uniques) else []
    both["missing_in_sis"] = both["in_platform"] & ~both["in_sis"]
    both["extra_in_sis"] = ~both["in_platform"] & both["in_sis"]
    agg = both.groupby(["student_id", "month"], sort=True).agg(
        platform_days=("in_platform", "sum"), sis_days=("in_sis", "sum"), missing_in_sis=("missing_in_sis", "sum"),
        extra_in_sis=("extra_in_sis", "sum"), absent_in_sis=("absent", "sum"), not_enrolled=("not_enrolled", "sum"),
    ).reset_index()
    numbers = students.dropna(subset=["student_id"]).drop_duplicates("student_id")
    agg["local_student_id"] = agg["student_id"].map(dict(zip(numbers["student_id"].astype("int64"),
                                                             numbers["student_number"], strict=True)))
    agg[list(KINDS)] = agg[list(KINDS)].astype("int64")
    agg["status"] = np.where(agg[list(KINDS)].sum(axis=1) > 0, "discrepancy", "ok")
    return agg.sort_values(["local_student_id", "month"], kind="stable")[["student_id", *COLUMNS]] \
        .reset_index(drop=True)


def summary(rows: pd.DataFrame, unknown_students: int = 0) -> dict[str, dict[str, int]]:
    """Per kind: student-months, distinct students and days. No student data."""
    out: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        hit = rows[rows[kind] > 0]
        out[kind] = {"student_months": int(len(hit)), "students": int(hit["student_id"].nunique()),
                     "days": int(hit[kind].sum())}
    out["unknown_student"] = {"student_months": 0, "students": 0, "days": int(unknown_students)}
    out["total"] = {"student_months": int(len(rows)), "students": int(rows["student_id"].nunique()),
                    "days": int(rows["platform_days"].sum())}
    return out
