"""Small helpers shared by the record builders."""

from __future__ import annotations

import pandas as pd

from calpads.dates import iso_dates
from calpads.layouts import Layout
from calpads.run_scope import RunScope

to_datetime = iso_dates   # ISO text dates to datetime64; anything unparsable becomes NaT


def ccyymmdd(values: pd.Series) -> pd.Series:
    """ISO text dates to CALPADS CCYYMMDD; a value that is not a real date is kept
    as it was, so that the gate's date-format rule reports it."""
    text = values.astype("object").where(values.notna(), None)
    valid = to_datetime(values).notna()
    out = text.where(~valid, text.astype("string").str.replace("-", "", regex=False).astype("object"))
    return out.where(pd.notna(out), None)


def blank_to_none(values: pd.Series) -> pd.Series:
    """Strip text; empty strings and nulls become None (CALPADS blank)."""
    text = values.astype("string").str.strip()
    return text.astype("object").where(text.notna() & (text != ""), None)


def program_set(layout: Layout, scope: RunScope) -> list[str]:
    """Programs a run extracts: the submission's set, or the custom list; never the layout's never_extracted."""
    codes = scope.programs if scope.submission == "custom" else layout.submissions.get(scope.submission, ())
    return [c for c in codes if c not in layout.never_extracted]


def sort_records(df: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """The layout's sort order; text compares case-insensitively ("de la Cruz" sorts with "D")."""
    keys = list(layout.sort_by)
    order = df[keys].fillna("").astype(str).apply(lambda col: col.str.upper())
    idx = order.sort_values(keys, kind="stable").index
    return df.loc[idx].reset_index(drop=True)
