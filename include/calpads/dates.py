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


def calpads_dates(values: pd.Series) -> pd.Series:
    """CCYYMMDD text (a CALPADS file's dates) to datetime64[ns]; anything unparsable becomes NaT."""
    return pd.to_datetime(values, format=CALPADS, errors="coerce").astype("datetime64[ns]")
