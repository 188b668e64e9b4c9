"""Dates as the pipeline reads them, in one place: the SIS hands ISO text (YYYY-MM-DD), CALPADS files
carry CCYYMMDD. Anything else is not a date: NaT (so a rule or a not-extracted reason names it), never a
guess."""

from __future__ import annotations

import pandas as pd

ISO = "%Y-%m-%d"
CALPADS = "%Y%m%d"


def iso_dates(values: pd.Series) -> pd.Series:
    """ISO text dates (as the SIS hands them) to datetime64; blanks and anything unparsable become NaT."""
    return pd.to_datetime(values, format=ISO, errors="coerce")


# datetime64[ns] spans 1677-09-21..2262-04-11; a SIS can hold 0001-01-01 or 9999-12-31.
NS_FIRST, NS_LAST = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")


def calpads_dates(values: pd.Series) -> pd.Series:
    """CCYYMMDD text (a CALPADS file's dates) to datetime64[ns]; anything unparsable becomes NaT. A real date
    outside datetime64[ns]'s span is clipped to its first or last day, so it still compares before or after
    every date a rule compares it with (a range rule reports it) instead of failing the run."""
    parsed = pd.to_datetime(values, format=CALPADS, errors="coerce")
    return parsed.clip(lower=NS_FIRST, upper=NS_LAST).astype("datetime64[ns]")
