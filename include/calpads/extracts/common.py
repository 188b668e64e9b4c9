"""Small helpers shared by the record builders."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


def sort_order(columns: dict[str, pa.Array | pa.ChunkedArray | pd.Series], keys: list[str]) -> np.ndarray:
    """The row order of the layout's sort: ``keys`` in turn, text compared case-insensitively (upper-cased, as
    Python's ``str.upper``), blank as ''; a stable sort (equal keys keep their order). Upper-cased text compares
    in UTF-8 byte order, which is code point order, as Python compares str."""
    return _stable_lexsort(_upper_ranks(columns[key]) for key in keys)


def in_sort_order(columns: dict[str, pa.Array | pa.ChunkedArray | pd.Series], keys: list[str]) -> bool:
    """Whether the rows are in ``sort_order`` already (its stable sort would keep them as they are): each row's
    keys, compared as ``sort_order`` compares them, are never before the previous row's. Stops at the first key
    that decides every pair of neighbours."""
    n = len(next(iter(columns.values()))) if columns else 0
    if n < 2:
        return True
    tied = np.ones(n - 1, dtype=bool)     # neighbours equal on the keys so far
    for key in keys:
        upper = _upper_texts(columns[key])
        before, after = upper.slice(0, n - 1), upper.slice(1)
        if (pc.greater(before, after).to_numpy(zero_copy_only=False) & tied).any():
            return False
        tied &= pc.equal(before, after).to_numpy(zero_copy_only=False)
        if not tied.any():
            break
    return True


def _upper_ranks(values: pa.Array | pa.ChunkedArray | pd.Series) -> np.ndarray:
    """Each row's rank among the key's distinct upper-cased texts (blank ''): equal texts, equal ranks."""
    return _dense_ranks(_upper_texts(values))


def _upper_texts(values: pa.Array | pa.ChunkedArray | pd.Series) -> pa.Array:
    """The key's texts upper-cased (as Python's ``str.upper``), blank as ''."""
    arr = _text_array(values) if isinstance(values, pd.Series) else values
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())   # a null column (every value blank) or a non-text one
    arr = pc.fill_null(arr, "")
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if pc.all(pc.string_is_ascii(arr)).as_py() is not False:
        # utf8_upper, the same on ASCII: pyarrow 26's ascii_upper writes broken offsets for a large_string chunk
        # whose offsets do not start at 0 (pandas hands such chunks for a Parquet file of several row groups).
        return pc.utf8_upper(arr)
    # Python's upper-casing of non-ASCII text (e.g. "ß" -> "SS"), exactly as before, once per distinct value.
    encoded = pc.dictionary_encode(arr)
    upper = pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object).str.upper()
    return pa.array(upper.to_numpy(dtype=object), pa.string()).take(encoded.indices)


def _dense_ranks(values: pa.Array) -> np.ndarray:
    """Each value's rank among the distinct values (text without nulls, in byte order): equal values, equal ranks.
    Sorting the few distinct values of most keys and then integers is faster than Arrow's sort of the texts."""
    encoded = pc.dictionary_encode(values)
    rank = np.empty(len(encoded.dictionary), dtype=np.int64)
    rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(len(rank))
    return rank[encoded.indices.to_numpy()]


def _stable_lexsort(ranks: Iterable[np.ndarray]) -> np.ndarray:
    """The stable order of the rows by the rank columns in turn. The ranks of consecutive keys are combined into
    one integer as they come, while their product fits: a few integer columns are held, not one per key."""
    combined: list[np.ndarray] = []
    size = 0
    for rank in ranks:
        n = int(rank.max()) + 1 if len(rank) else 1
        if combined and size * n < 2**62:
            combined[-1], size = combined[-1] * n + rank, size * n
        else:
            combined.append(rank)
            size = n
    if len(combined) == 1:
        return np.argsort(combined[0], kind="stable")
    return np.lexsort(combined[::-1])


def sort_records(df: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """The layout's sort order; text compares case-insensitively ("de la Cruz" sorts with "D")."""
    keys = list(layout.sort_by)
    columns = {k: df[k] for k in keys}
    if df.empty or in_sort_order(columns, keys):   # e.g. the diff's records, kept in the build's order
        return df.reset_index(drop=True)
    order = sort_order(columns, keys)
    return df.iloc[order].reset_index(drop=True)


def _text_array(values: pd.Series) -> pa.Array:
    """A column as Arrow text, blanks null; a value that is not text as its str(), as the sort always compared it."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        return pa.array(values.array)   # its own Arrow data (no conversion; a cast of sliced chunks can break)
    try:
        return pa.array(values.to_numpy(dtype=object), pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = values.map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore")
        return pa.array(text.to_numpy(dtype=object), pa.string(), from_pandas=True)
