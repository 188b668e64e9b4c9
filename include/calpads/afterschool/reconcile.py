"""Reconcile the afterschool platform with the SIS, per student per month (the guide's "spot-check
source data against SIS data ... If your afterschool platform shows 15 days in October, does the
SIS show the same 15?"), for every student. The nightly reconciliation and the integration_health
spot-check both use this one comparison.

The platform side is the platform's export as sent: the sessions the import staged *and* the rows it
held back (a held-back day is still a platform day). A day is a calendar date with any afterschool
session (several sessions or programs count once). Discrepancy kinds (day counts, per student and month):
- ``missing_in_sis``: a staged platform day the SIS participation table does not have;
- ``held_back``: a platform day whose only rows the import held back (a rule broken: they are not
  written to the SIS until fixed in the platform), whether or not the SIS has the day from earlier;
- ``removed_in_platform``: a SIS day this pipeline wrote earlier that the platform's export no longer has;
- ``extra_in_sis``: a SIS day the platform never had and this pipeline never wrote (entered in the SIS);
- ``absent_in_sis``: a staged platform day on which the SIS has the student absent (daily attendance);
- ``not_enrolled``: a staged platform day no SIS enrollment of the student covers, where one is needed
  (calpads.afterschool.eligibility: not AR, not a registered student's expanded learning).
Rows for student numbers the SIS does not know have no SIS student to compare: the summary counts them
as ``unknown_student``. Each kind is classified as the guide asks ("an integration issue, a data
quality issue, or a process issue?") and names who acts on it (KIND_INFO).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from calpads.afterschool.eligibility import covered_by_enrollment, needs_enrollment
from calpads.alerts.roles import ROLE_WORDS


@dataclass(frozen=True)
class Kind:
    meaning: str
    category: str        # integration | data quality | process (the guide's three)
    role: str            # who acts: it | afterschool | coordinator (calpads.alerts.roles)
    what_to_do: str


KIND_INFO: dict[str, Kind] = {
    "missing_in_sis": Kind(
        "platform days the SIS participation table lacks", "integration", "it",
        "The write-back has not written these days: check that scheduled write-back is on (Variable "
        "afterschool_write_mode = write) and read the write-back report; if the SIS refused the write, ask district "
        "IT for INSERT and UPDATE on the participation table."),
    "held_back": Kind(
        "platform days whose rows the import held back (a rule broken)", "data quality", "afterschool",
        "Fix the rows listed in import_held_back.csv in the afterschool platform; the next export brings them in."),
    "removed_in_platform": Kind(
        "SIS days the pipeline wrote earlier that the platform has since deleted", "process", "afterschool",
        "Check in the platform whether the session was deleted on purpose. If so, ask district IT to remove the SIS "
        "row (the pipeline never deletes); if not, restore it in the platform."),
    "extra_in_sis": Kind(
        "SIS days the platform never had (entered in the SIS, not written by the pipeline)", "process", "coordinator",
        "Afterschool attendance is entered in the platform only: enter the day in the platform (the pipeline then "
        "writes it) or have the SIS row removed."),
    "absent_in_sis": Kind(
        "platform days on which the SIS has the student absent", "data quality", "afterschool",
        "Ask the school office which record is right: the student's regular-day absence or the afterschool check-in."),
    "not_enrolled": Kind(
        "platform days outside every SIS enrollment of a student without an expanded-learning registration",
        "data quality", "afterschool",
        "Register the student for the program in the afterschool platform, or ask the school office whether the "
        "enrollment dates are right."),
    "unknown_student": Kind(
        "platform rows for student numbers the SIS does not know (held back at import)", "data quality", "afterschool",
        "Correct the student number in the afterschool platform (it must be the SIS Student Number)."),
}
KINDS = ("missing_in_sis", "held_back", "removed_in_platform", "extra_in_sis", "absent_in_sis", "not_enrolled")
DAY_COUNT_KINDS = ("missing_in_sis", "held_back", "removed_in_platform", "extra_in_sis")   # platform days != SIS days
COLUMNS = ["local_student_id", "month", "platform_days", "sis_days", *KINDS, "status"]


def _parse_days(dates: pd.Series) -> np.ndarray:
    """'YYYY-MM-DD...' text -> datetime64; each distinct date parsed once (a year has ~365)."""
    codes, uniques = pd.factorize(dates.astype(str).str[:10])
    parsed = pd.to_datetime(pd.Series(uniques, dtype="object"), format="%Y-%m-%d", errors="coerce").to_numpy()
    out = parsed[codes] if len(uniques) else np.array([], dtype="datetime64[ns]")
    return np.where(codes < 0, np.datetime64("NaT"), out).astype("datetime64[ns]")


DAY_BITS = 20     # a (student, day) pair as one int64: student_id << 20 | days since 1970 (dates before 4840)


def _keys(student_id: pd.Series, dates: pd.Series | np.ndarray) -> np.ndarray:
    """Distinct (student, day) pairs as sorted int64 keys; unparseable dates dropped."""
    day = dates if isinstance(dates, np.ndarray) else _parse_days(dates)
    ok = ~np.isnat(day)
    sid = pd.to_numeric(student_id).astype("int64").to_numpy()[ok]
    return _distinct((sid << DAY_BITS) | day[ok].astype("datetime64[D]").astype("int64"))


def _distinct(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct int64 keys (a sort: several times faster than np.unique's hashing on millions of keys)."""
    a = np.sort(keys, kind="stable")
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if len(a) else a


def _none() -> np.ndarray:
    return np.array([], dtype="int64")


def reconcile(platform: pd.DataFrame, sis_participation: pd.DataFrame, enrollments: pd.DataFrame,
              absences: pd.DataFrame, students: pd.DataFrame, *, held: pd.DataFrame | None = None,
              written: pd.DataFrame | None = None, registered: Iterable[int] = ()) -> pd.DataFrame:
    """platform: staged sessions (student_id, session_date[, program]); sis_participation: studentid,
    participation_date; enrollments: student_id, entrydate, exitdate; absences: student_id, date; students:
    student_id, student_number; held: the held-back attendance rows of known students (student_id, session_date);
    written: (studentid, participation_date) this pipeline wrote; registered: SIS ids of students with an
    expanded-learning registration. One row per student and month with any afterschool day on either side."""
    platform_day = _parse_days(platform["session_date"])
    staged = _keys(platform["student_id"], platform_day)
    held_k = _keys(held["student_id"], held["session_date"]) if held is not None and len(held) else _none()
    sis = _keys(sis_participation["studentid"], sis_participation["participation_date"])
    wrote = _keys(written["studentid"], written["participation_date"]) if written is not None and len(written) \
        else _none()
    absent = _keys(absences["student_id"], pd.to_datetime(absences["date"]).to_numpy(dtype="datetime64[ns]"))
    # A staged day needs an enrollment unless every program of the day is exempt (eligibility rule).
    if "program" in platform:
        must = needs_enrollment(platform["program"], platform["student_id"], registered).to_numpy()
        must_k = _keys(platform["student_id"][must], platform_day[must])
    else:
        must_k = staged

    key = _distinct(np.concatenate([staged, held_k, sis]))
    in_staged = np.isin(key, staged, assume_unique=True)
    in_held = np.isin(key, held_k, assume_unique=True)
    in_sis = np.isin(key, sis, assume_unique=True)
    written_ = np.isin(key, wrote, assume_unique=True)
    both = pd.DataFrame({"student_id": key >> DAY_BITS,
                         "day": (key & ((1 << DAY_BITS) - 1)).astype("datetime64[D]").astype("datetime64[ns]")})
    check = np.flatnonzero(in_staged & np.isin(key, must_k, assume_unique=True))
    covered = covered_by_enrollment(both["student_id"].iloc[check], both["day"].iloc[check], enrollments)
    not_enrolled = np.zeros(len(key), dtype=bool)
    not_enrolled[check[~covered.to_numpy()]] = True
    gone = ~in_staged & ~in_held
    flags = {
        "platform_days": in_staged | in_held, "sis_days": in_sis,
        "missing_in_sis": in_staged & ~in_sis,
        "held_back": ~in_staged & in_held,
        "removed_in_platform": gone & in_sis & written_,
        "extra_in_sis": gone & in_sis & ~written_,
        "absent_in_sis": in_staged & np.isin(key, absent, assume_unique=True),
        "not_enrolled": not_enrolled,
    }
    codes, uniques = pd.factorize(both["day"].to_numpy(dtype="datetime64[M]"))
    both["month"] = np.array([str(u)[:7] for u in uniques], dtype=object)[codes] if len(uniques) else []
    for name, values in flags.items():
        both[name] = values.astype("int64")
    agg = both.groupby(["student_id", "month"], sort=True)[list(flags)].sum().reset_index()
    numbers = students.dropna(subset=["student_id"]).drop_duplicates("student_id")
    agg["local_student_id"] = agg["student_id"].map(dict(zip(numbers["student_id"].astype("int64"),
                                                             numbers["student_number"], strict=True)))
    agg[list(flags)] = agg[list(flags)].astype("int64")
    agg["status"] = np.where(agg[list(KINDS)].sum(axis=1) > 0, "discrepancy", "ok")
    return agg.sort_values(["local_student_id", "month"], kind="stable")[["student_id", *COLUMNS]] \
        .reset_index(drop=True)


def summary(rows: pd.DataFrame, unknown_students: int = 0) -> dict[str, dict[str, object]]:
    """Per kind: student-months, distinct students, days, and its category. No student data."""
    out: dict[str, dict[str, object]] = {}
    for kind in KINDS:
        hit = rows[rows[kind] > 0]
        out[kind] = {"student_months": int(len(hit)), "students": int(hit["student_id"].nunique()),
                     "days": int(hit[kind].sum()), "category": KIND_INFO[kind].category}
    out["unknown_student"] = {"student_months": 0, "students": 0, "days": int(unknown_students),
                              "category": KIND_INFO["unknown_student"].category}
    out["total"] = {"student_months": int(len(rows)), "students": int(rows["student_id"].nunique()),
                    "days": int(rows["platform_days"].sum())}
    return out


def by_category(counts: dict[str, dict[str, object]]) -> dict[str, int]:
    """Discrepant days per category (integration, data quality, process), for the emails."""
    out = {"integration": 0, "data quality": 0, "process": 0}
    for kind, info in KIND_INFO.items():
        out[info.category] += int(counts.get(kind, {}).get("days", 0) or 0)   # type: ignore[call-overload]
    return out


def explained() -> pd.DataFrame:
    """The kinds as a table for the reports: kind, meaning, category, who acts, what to do."""
    return pd.DataFrame([{"kind": k, "meaning": v.meaning, "category": v.category, "who": ROLE_WORDS[v.role],
                          "what_to_do": v.what_to_do} for k, v in KIND_INFO.items()])

