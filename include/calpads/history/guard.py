"""The mass-delete guard: a submission run must not quietly delete a large part of what CALPADS holds.

A broken SIS pull (an empty table, a lost connection mid-read), a wrong date range or a wrong
school list all look the same to the diff: previously submitted keys that are no longer
extracted, i.e. deletes. Uploading such a ``_D`` file would remove real records from CALPADS.
So a run whose deletes exceed a share of the previously submitted records in its scope (default
20%; Airflow config ``[calpads] max_delete_share``) fails before anything is published, unless
its conf says ``allow_mass_delete: true``.

The share is "more than": at the default 20%, 20 deletes of 100 pass and 21 are blocked. It is
compared exactly (``Fraction``), so 0.2 x 100 is 20, not 20.000000000000004.

A few deletes can be as wrong as many: a delete of a record whose student is still enrolled (a
program row removed by mistake, or a key field changed -- the old key's D) fails the run with
``EnrolledDeleteBlocked`` unless its conf says ``allow_enrolled_deletes: true``. The message and
``report/deletes.csv`` list the records by Local Record ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from calpads.history.diff import ScopeFilter
from calpads.layouts import Layout

DEFAULT_MAX_DELETE_SHARE = 0.20


class MassDeleteBlocked(RuntimeError):
    """Too many deletes for one run: nothing was published. The message carries counts only."""


@dataclass(frozen=True)
class DeleteCheck:
    deletes: int
    in_scope: int              # previously submitted records (latest, not deleted) in the run's scope
    max_share: float
    allowed_by_conf: bool

    @property
    def share(self) -> float:
        return self.deletes / self.in_scope if self.in_scope else 0.0

    @property
    def over(self) -> bool:
        return self.in_scope > 0 and Fraction(self.deletes, self.in_scope) > Fraction(str(self.max_share))

    def as_dict(self) -> dict[str, object]:
        return {"deletes": self.deletes, "previously_submitted_in_scope": self.in_scope,
                "max_delete_share": self.max_share, "over_share": self.over,
                "allow_mass_delete": self.allowed_by_conf}


def parse_share(value: object) -> float:
    """A share from configuration ("0.2", "20%"), between 0 and 1."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"max_delete_share {text[:20]!r} is not a number between 0 and 1") from None
    if not 0 <= share <= 1:
        raise ValueError(f"max_delete_share {share} is not between 0 and 1")
    return share


def in_scope_count(last_submitted: pd.DataFrame, layout: Layout, scope: ScopeFilter) -> int:
    """How many of the previously submitted records the run may delete (its scope)."""
    if last_submitted is None or len(last_submitted) == 0:
        return 0
    return int(scope.mask(last_submitted, layout).sum())


def check_deletes(deletes: int, in_scope: int, *, record_type: str, max_share: float = DEFAULT_MAX_DELETE_SHARE,
                  allow_mass_delete: bool = False) -> DeleteCheck:
    """Raise ``MassDeleteBlocked`` when ``deletes`` is more than ``max_share`` of ``in_scope`` and the
    run does not allow it; return the check (for the run's state and manifest) otherwise."""
    check = DeleteCheck(int(deletes), int(in_scope), float(max_share), bool(allow_mass_delete))
    if check.over and not allow_mass_delete:
        raise MassDeleteBlocked(
            f"This {record_type} run would delete {check.deletes} of the {check.in_scope} previously submitted "
            f"records in its scope ({check.share:.0%}, more than the {check.max_share:.0%} allowed), so nothing "
            "was published. Check that the report date range, schools and program set are the intended ones, "
            "and that the SIS pull is complete (a broken or partial SIS pull looks like mass deletes): compare "
            "the extracted record count in this run's log with earlier runs. If the deletes are real, trigger "
            "the run again with allow_mass_delete: true in its conf (Trigger DAG w/ config), or change "
            "[calpads] max_delete_share (AIRFLOW__CALPADS__MAX_DELETE_SHARE)."
        )
    return check


# --------------------------------------------------------------------------- deletes of enrolled students
class EnrolledDeleteBlocked(RuntimeError):
    """Deletes of records of students still enrolled, and the run does not allow them: nothing was published.
    The message names Local Record IDs, program codes and school codes only."""


LISTED_IN_MESSAGE = 20
KEY_CHANGED = "key changed: the same record is sent again with a new school, SSID, program, start date or service code"
GONE = "no longer extracted from the SIS"
DELETE_COLUMNS = ["local_record_id", "local_student_id", "school_of_attendance", "program_code", "why",
                  "student_still_enrolled"]


def delete_listing(deletes: pd.DataFrame, extracted: pd.DataFrame, enrolled: set[str] | None) -> pd.DataFrame:
    """One row per D record of a run (no names, birth dates or SSIDs): its ids, school and program, why it is a
    delete, and whether its student is still enrolled ("Y"/"N"; "Y" also for a key change, whose record is
    extracted this run; "?" when the builder cannot tell, which never blocks)."""
    if deletes is None or not len(deletes):
        return pd.DataFrame(columns=DELETE_COLUMNS)
    ids = deletes["local_record_id"].astype(object)
    key_changed = named_in(ids, extracted["local_record_id"])
    if enrolled is None:
        still = np.where(key_changed, "Y", "?")
    else:
        in_sis = deletes["local_student_id"].astype(object).isin(enrolled).to_numpy(dtype=bool)
        still = np.where(key_changed | in_sis, "Y", "N")
    return pd.DataFrame({
        "local_record_id": ids.to_numpy(),
        "local_student_id": deletes["local_student_id"].to_numpy(),
        "school_of_attendance": (deletes["school_of_attendance"] if "school_of_attendance" in deletes
                                 else pd.Series(None, index=deletes.index)).to_numpy(),
        "program_code": (deletes["program_code"] if "program_code" in deletes
                         else pd.Series(None, index=deletes.index)).to_numpy(),
        "why": np.where(key_changed, KEY_CHANGED, GONE),
        "student_still_enrolled": still,
    })


def named_in(values: pd.Series, names: pd.Series) -> np.ndarray:
    """``values.isin(set(names.dropna().astype(str)))`` without a Python object per name: the distinct text values
    are looked up among the names in Arrow (a run's 1.5M Local Record IDs against its few deletes' ones)."""
    wanted = [v for v in set(values.dropna()) if isinstance(v, str)]
    if not wanted:
        return np.zeros(len(values), dtype=bool)
    known = pa.array(names.dropna().astype(str), from_pandas=True)
    found = known.filter(pc.is_in(known, value_set=pa.array(wanted, known.type)))
    return values.isin(set(found.to_pylist())).to_numpy(dtype=bool)


def delete_summary(listing: pd.DataFrame, *, kept: int, allowed: bool) -> dict[str, object]:
    """Counts for the manifest, the summary email and the report: deletes per program and per school, how many
    are of students still enrolled / key changes, and how many submitted records were kept from a delete
    because the SIS still has them (held back or not extracted this run)."""
    def per(column: str) -> dict[str, int]:
        values = listing[column].fillna("").astype(str) if column in listing else pd.Series(dtype=str)
        return {k: int(v) for k, v in sorted(values.value_counts().items())}

    return {"count": len(listing), "by_program": per("program_code") if listing["program_code"].notna().any() else {},
            "by_school": per("school_of_attendance"),
            "of_enrolled_students": int((listing["student_still_enrolled"] == "Y").sum()),
            "key_changes": int((listing["why"] == KEY_CHANGED).sum()),
            "kept_because_still_in_sis": int(kept), "allow_enrolled_deletes": bool(allowed)}


def check_enrolled_deletes(listing: pd.DataFrame, *, record_type: str, allow_enrolled_deletes: bool = False) -> None:
    """Raise ``EnrolledDeleteBlocked`` when a delete is of a student still enrolled and the run does not allow it."""
    enrolled = listing[listing["student_still_enrolled"] == "Y"]
    if not len(enrolled) or allow_enrolled_deletes:
        return
    shown = []
    for r in enrolled.head(LISTED_IN_MESSAGE).itertuples(index=False):
        where = f"program {r.program_code} at school {r.school_of_attendance}" if r.program_code else \
            f"school {r.school_of_attendance}"
        shown.append(f"{r.local_record_id} (Local Student ID {r.local_student_id}, {where}: {r.why})")
    more = len(enrolled) - len(shown)
    raise EnrolledDeleteBlocked(
        f"This {record_type} run would delete {len(enrolled)} record(s) of students who are still enrolled, so "
        f"nothing was published: {'; '.join(shown)}{f'; and {more} more' if more > 0 else ''}. "
        "Every delete is listed in report/deletes.csv of the run folder. Check each record in the SIS: a typo in "
        "a key field (school, SSID, program, start date) or a program row deleted by mistake looks the same. "
        "Correct the SIS and run again; if the deletes are real (the program or enrollment was wrong), trigger "
        "the run again with allow_enrolled_deletes: true in its conf (Trigger DAG w/ config)."
    )
