"""Operational keys and updatable-field hashes, computed by DuckDB over pandas frames.

Canonical form (shared by the store and the diff, so stored values compare with fresh ones):
the values joined by the unit separator U+001F, each cast to text, None and "" equal.
- op key: the layout's operational key values, joined;
- hash:   the first 128 bits of the sha256 of the layout's updatable values, joined, as 32 hex digits (a hash
          is only compared with the same key's earlier hash: 128 bits are plenty, and the stored row narrower).
Changing either definition changes every stored key/hash: don't, without a migration.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from calpads.layouts import Layout

FIELD_SEPARATOR = "^"   # stored fields: the layout's values joined as in the published file, blank = None


def ident(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def joined_sql(columns: list[str], alias: str = "") -> str:
    """SQL text of the canonical joined value of ``columns`` (layout column names, never user input)."""
    prefix = f"{alias}." if alias else ""
    if not columns:
        return "''"
    parts = ", ".join(f"coalesce(CAST({prefix}{ident(c)} AS VARCHAR), '')" for c in columns)
    return f"concat_ws(chr(31), {parts})"


def op_key_sql(layout: Layout, alias: str = "") -> str:
    return joined_sql(list(layout.operational_keys), alias)


def op_keys(frame: pd.DataFrame, layout: Layout) -> pd.Series:
    """The one Python home of the operational key: each row's key in the canonical form (``op_key_sql``),
    computed in DuckDB, as a Series on the frame's index. A layout key column the frame lacks counts as blank."""
    return pd.Series(joined_keys(frame, list(layout.operational_keys)), index=frame.index, dtype=object)


def joined_keys(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each row's ``columns`` values joined in the canonical form, computed in DuckDB."""
    values = string_frame(frame, columns).reset_index(drop=True)
    with duckdb.connect() as con:
        con.register("vals", values)
        sql = f"SELECT {joined_sql(columns)} AS k FROM vals"  # noqa: S608  (layout column names only)
        return np.asarray(con.sql(sql).fetchnumpy()["k"], dtype=object)


def fields_sql(columns: list[str]) -> str:
    """SQL text of the stored fields: the values joined by FIELD_SEPARATOR, None as ""."""
    parts = ", ".join(f"coalesce(CAST({ident(c)} AS VARCHAR), '')" for c in columns)
    return f"concat_ws('{FIELD_SEPARATOR}', {parts})"


def hash_sql(layout: Layout, alias: str = "") -> str:
    return f"left(sha256({joined_sql(layout.updatable_fields, alias)}), 32)"


def string_frame(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The frame's ``columns`` (missing ones as all-None), without copying the data."""
    return pd.DataFrame({c: (df[c] if c in df.columns else pd.Series([None] * len(df), dtype=object, index=df.index))
                         for c in columns}, index=df.index, copy=False)
