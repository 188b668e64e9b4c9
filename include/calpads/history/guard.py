"""The mass-delete guard: a submission run must not quietly delete a large part of what CALPADS holds.

A broken SIS pull (an empty table, a lost connection mid-read), a wrong date range or a wrong
school list all look the same to the diff: previously submitted keys that are no longer
extracted, i.e. deletes. Uploading such a ``_D`` file would remove real records from CALPADS.
So a run whose deletes exceed a share of the previously submitted records in its scope (default
20%; Airflow config ``[calpads] max_delete_share``) fails before anything is published, unless
its conf says ``allow_mass_delete: true``.

The share is "more than": at the default 20%, 20 deletes of 100 pass and 21 are blocked. It is
compared exactly (``Fraction``), so 0.2 x 100 is 20, not 20.000000000000004.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pandas as pd

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
