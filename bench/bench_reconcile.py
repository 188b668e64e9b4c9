"""Time the afterschool reconciliation (calpads.afterschool.reconcile) for 50,000 students x one year.

    python bench/bench_reconcile.py [--students 50000] [--attend 0.6]

Synthetic frames, no database: every student enrolled all year (a few leave mid-year), attending the
afterschool program on ``attend`` of 180 school days (one year of sessions), the SIS holding the
platform's days minus 1% plus a few extra, ~5% of school days absent. Prints the sizes and seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from calpads.afterschool.reconcile import reconcile, summary


def frames(students: int, attend: float, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2025-08-13", periods=180)
    ids = np.arange(1, students + 1)
    k = rng.binomial(180, attend, students)
    stu = np.repeat(ids, k)
    pos = np.concatenate([np.sort(rng.choice(180, n, replace=False)) for n in k])
    platform = pd.DataFrame({"student_id": stu, "session_date": days[pos].strftime("%Y-%m-%d")})
    keep = rng.random(len(platform)) > 0.01
    extra = platform.sample(frac=0.002, random_state=seed).assign(
        session_date=lambda d: (pd.to_datetime(d["session_date"]) + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%d"))
    sis = pd.concat([platform[keep], extra]).rename(columns={"student_id": "studentid",
                                                              "session_date": "participation_date"})
    exit_ = np.where(rng.random(students) < 0.05, np.datetime64("2026-02-02"), np.datetime64("NaT"))
    enrollments = pd.DataFrame({"student_id": ids, "entrydate": pd.Timestamp("2025-08-13"),
                                "exitdate": pd.to_datetime(exit_)})
    ab_k = rng.binomial(180, 0.05, students)
    absences = pd.DataFrame({"student_id": np.repeat(ids, ab_k),
                             "date": days[rng.integers(0, 180, ab_k.sum())]}).drop_duplicates()
    students_df = pd.DataFrame({"student_id": ids, "student_number": (ids + 100000).astype(str)})
    return {"platform": platform, "sis": sis, "enrollments": enrollments, "absences": absences,
            "students": students_df}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=50_000)
    ap.add_argument("--attend", type=float, default=0.6)
    args = ap.parse_args()
    t0 = time.perf_counter()
    f = frames(args.students, args.attend)
    t1 = time.perf_counter()
    rows = reconcile(f["platform"], f["sis"], f["enrollments"], f["absences"], f["students"])
    t2 = time.perf_counter()
    s = summary(rows)
    print(f"students {args.students:,}; platform sessions {len(f['platform']):,}; SIS rows {len(f['sis']):,}; "
          f"absences {len(f['absences']):,}")
    print(f"data generation {t1 - t0:.1f} s; reconciliation {t2 - t1:.1f} s; {len(rows):,} student-months")
    print({k: v["days"] for k, v in s.items()})


if __name__ == "__main__":
    main()
