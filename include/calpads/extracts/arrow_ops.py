"""Column steps of a record builder on Arrow arrays and row positions, each giving exactly what its pandas
counterpart gives (the SPRG build uses them for its 2.9M program rows at 500k students):

- ``inner_join``: the row positions of pandas' inner merge, in its row order, instead of a merged frame that
  copies every column at every join;
- ``blank_to_null`` / ``per_value``: calpads.extracts.common's text helpers on Arrow text, without one Python
  object per row (``per_value`` runs a pandas helper once per distinct value);
- ``id_text``: an id column as pandas' ``astype(str)`` writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from calpads.dates import dates_per_value

Text = pa.Array | pa.ChunkedArray


def arrow_text(values: pd.Series) -> pa.Array:
    """A text column as Arrow large text (pandas' own Arrow buffers for its Arrow-backed text; blanks null)."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        arr = pa.array(values.array)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    else:
        arr = pa.array(values.to_numpy(dtype=object), pa.string(), from_pandas=True)
    return arr.cast(pa.large_string())


def blank_to_null(values: Text) -> Text:
    """common.blank_to_none in Arrow: text stripped (pandas' ``str.strip`` is ``utf8_trim_whitespace``), an
    empty text null."""
    text = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)


def per_value(values: Text, fn: Callable[[pd.Series], pd.Series]) -> pa.Array:
    """``fn`` (an element-wise pandas text helper, e.g. common.ccyymmdd) of every value, run once per distinct
    value: its text results as Arrow (a null stays null)."""
    encoded = _encoded(values)
    out = fn(pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object))
    return pa.array(out.to_numpy(dtype=object), pa.large_string(), from_pandas=True).take(encoded.indices)


def per_value_dates(values: Text, fn: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """``fn`` (ISO text to datetime64, e.g. common.to_datetime) of every value, once per distinct value, as
    datetime64[us] (NaT for a null or an unparsable value)."""
    return dates_per_value(values, fn).astype("datetime64[us]")


def _encoded(values: Text) -> pa.DictionaryArray:
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return pc.dictionary_encode(arr)


def id_text(values: pd.Series) -> pa.Array:
    """``values.astype(str)`` as Arrow large text: an integer id's digits ('17'), any other id as pandas writes it."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return pc.cast(pa.array(values.to_numpy()), pa.large_string())
    return pa.array(values.astype(str).to_numpy(dtype=object), pa.large_string(), from_pandas=True)


def inner_join(left: Sequence[np.ndarray], right: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (left, right) of ``pandas.merge(how="inner")`` on these key columns, in its row order: each
    left row in turn with its matching right rows in their order; a missing key matches a missing key."""
    n_left, n_right = len(left[0]), len(right[0])
    if not n_left or not n_right:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    codes = key_codes([np.concatenate([lv, rv]) for lv, rv in zip(left, right, strict=True)])
    lc, rc = codes[:n_left], codes[n_left:]
    order = np.argsort(rc, kind="stable")
    lo = np.searchsorted(rc[order], lc, side="left")
    counts = np.searchsorted(rc[order], lc, side="right") - lo
    li = np.repeat(np.arange(n_left), counts)
    run_start = np.cumsum(counts) - counts
    ri = order[np.repeat(lo - run_start, counts) + np.arange(len(li))]
    return li, ri


def left_positions(left: Sequence[np.ndarray], right: Sequence[np.ndarray]) -> np.ndarray:
    """For each left row, the position of its right row (-1: none) in ``pandas.merge(how="left")`` with a right
    side whose keys are unique."""
    li, ri = inner_join(left, right)
    out = np.full(len(left[0]), -1, dtype=np.intp)
    out[li] = ri
    return out


def key_codes(columns: Sequence[np.ndarray]) -> np.ndarray:
    """One int64 code per row: equal codes for equal key tuples (missing equals missing, as pandas compares
    keys). Integer keys whose ranges multiply within int64 are their own codes (no hashing); others are
    numbered in order of first appearance."""
    if all(values.dtype.kind == "i" for values in columns):
        codes = np.zeros(len(columns[0]), dtype=np.int64)
        size = 1
        for values in columns:
            low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
            span = high - low + 1
            if size * span >= 2**62:
                break
            codes, size = codes * span + (values.astype(np.int64) - low), size * span
        else:
            return codes
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for values in columns:
        c, uniques = pd.factorize(values, use_na_sentinel=False)
        codes, _ = pd.factorize(codes * len(uniques) + c)
    return codes.astype(np.int64)


def first_of_each(columns: Sequence[np.ndarray]) -> np.ndarray:
    """True for the first row of each key tuple: ``~DataFrame.duplicated(keep="first")``."""
    codes = key_codes(columns)
    keep = np.zeros(len(codes), dtype=bool)
    keep[np.unique(codes, return_index=True)[1]] = True
    return keep
