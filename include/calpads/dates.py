"""Dates as the pipeline reads them, in one place: the SIS hands ISO text (YYYY-MM-DD), CALPADS files
carry CCYYMMDD. Anything else is not a date: NaT (so a rule or a not-extracted reason names it), never a
guess."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ISO = "%Y-%m-%d"
CALPADS = "%Y%m%d"


def iso_dates(values: pd.Series) -> pd.Series:
    """ISO text dates (as the SIS hands them) to datetime64; blanks and anything unparsable become NaT.
    Arrow-backed text (the staged tables') is parsed once per distinct value: a column of dates repeats a few
    hundred days, and pandas would first make a Python str of every row."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        days = dates_per_value(pa.chunked_array(pa.array(values.array)), _parse_iso)
        return pd.Series(days, index=values.index, name=values.name)
    return _parse_iso(values)


def _parse_iso(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format=ISO, errors="coerce")


# The years an enrollment or a school day can fall in. A SIS can hold placeholders such as 0001-01-01 or
# 9999-12-31 (a "no end" date): real ISO dates, but no enrollment's, and outside datetime64[ns]'s span.
SIS_FIRST, SIS_LAST = pd.Timestamp("1900-01-01"), pd.Timestamp("2199-12-31")


def sis_days(values: pd.Series) -> pd.Series:
    """ISO text dates of enrollments and calendars to datetime64[ns]: NaT for a blank, for anything
    unparsable and for a date outside SIS_FIRST..SIS_LAST (a placeholder, never an enrollment's day)."""
    days = iso_dates(values)
    return days.where((days >= SIS_FIRST) & (days <= SIS_LAST)).astype("datetime64[ns]")


def dates_per_value(values: pa.Array | pa.ChunkedArray, parse: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """``parse`` (text to datetime64, NaT for what is not a date) of Arrow text, run once per distinct value and
    taken back to every row, in ``parse``'s datetime unit; a null is NaT."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    encoded = pc.dictionary_encode(arr)
    distinct = parse(pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)).to_numpy()
    days = np.append(distinct, np.datetime64("NaT").astype(distinct.dtype))
    return days[pc.fill_null(encoded.indices, len(distinct)).to_numpy()]


# datetime64[ns] spans 1677-09-21..2262-04-11; a SIS can hold 0001-01-01 or 9999-12-31.
NS_FIRST, NS_LAST = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")


def calpads_dates(values: pd.Series) -> pd.Series:
    """CCYYMMDD text (a CALPADS file's dates) to datetime64[ns]; anything unparsable becomes NaT. A real date
    outside datetime64[ns]'s span is clipped to its first or last day, so it still compares before or after
    every date a rule compares it with (a range rule reports it) instead of failing the run."""
    parsed = pd.to_datetime(values, format=CALPADS, errors="coerce")
    return parsed.clip(lower=NS_FIRST, upper=NS_LAST).astype("datetime64[ns]")
