"""Whether an afterschool day must fall inside one of the student's school enrollments: one rule, used by
the write-back (WB-ENROLLED) and the reconciliation (``not_enrolled``).

- Expanded learning (ELO-P, ASES, 21CCLC): CALPADS reports every student with a signed ELP registration
  form, and the LEAP records "do not depend on school enrollment dates" (CALPADS ELP at a Glance,
  https://documentation.staging.calpads.org/Training/ELOPAtaGlance/). A registered student's summer or
  intersession day is valid without an enrollment; a student without a registration needs one.
- Attendance recovery (AR) runs before or after school, on weekends or during intersession (EC 46211(b)(1),
  CDE Attendance Recovery page https://www.cde.ca.gov/fg/it/aarecovery.asp) and may be banked before the
  absence: it never needs an enrollment on the day.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from calpads.afterschool import EXPANDED_LEARNING_PROGRAMS


def needs_enrollment(program: pd.Series, student_id: pd.Series, registered: Iterable[int]) -> pd.Series:
    """True where the day is valid only inside a school enrollment: expanded learning of an unregistered
    student (or an unknown program). AR and a registered student's expanded learning never need one."""
    ids = pd.to_numeric(student_id, errors="coerce")
    is_registered = ids.isin(set(registered)).to_numpy(dtype=bool)
    exempt = (program == "AR").to_numpy(dtype=bool) | (program.isin(EXPANDED_LEARNING_PROGRAMS).to_numpy(dtype=bool)
                                                       & is_registered)
    return pd.Series(~exempt, index=program.index)


def covered_by_enrollment(student_id: pd.Series, day: pd.Series, enrollments: pd.DataFrame) -> pd.Series:
    """True where one of the student's enrollments covers the day (entry <= day < exit; open = no exit)."""
    probe = pd.DataFrame({"student_id": pd.to_numeric(student_id).astype("int64").to_numpy(),
                          "day": pd.to_datetime(pd.Series(day)).to_numpy(dtype="datetime64[ns]"),
                          "pos": np.arange(len(day))})
    enr = enrollments[["student_id", "entrydate", "exitdate"]].dropna(subset=["student_id", "entrydate"]).copy()
    enr["student_id"] = enr["student_id"].astype("int64")
    m = probe.merge(enr, on="student_id", how="inner")
    ok = (m["entrydate"] <= m["day"]) & (m["exitdate"].isna() | (m["day"] < m["exitdate"]))
    covered = np.zeros(len(day), dtype=bool)
    covered[m.loc[ok, "pos"].to_numpy()] = True
    return pd.Series(covered, index=student_id.index)
