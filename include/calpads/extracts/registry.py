"""Which builder makes which record type. A new CALPADS file = a layout YAML + a builder here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from calpads.run_scope import RunScope


@dataclass
class Built:
    records: pd.DataFrame
    not_extracted: pd.DataFrame
    lea: str
    scoped_school_codes: list[str]


def _sprg(engine: sa.Engine, scope: RunScope) -> Built:
    from calpads.extracts.common import program_set
    from calpads.extracts.sprg import build_sprg
    from calpads.layouts import load_layout
    from calpads.sources.sql_sis import pull_sprg

    pulled = pull_sprg(engine, scope, program_set(load_layout("SPRG"), scope))
    built = build_sprg(pulled, scope)
    return Built(built.records, built.not_extracted, pulled.lea,
                 [str(c) for c in pulled.scoped_schools["school_code"].dropna()])


BUILDERS: dict[str, Callable[[sa.Engine, RunScope], Any]] = {"SPRG": _sprg}


def builder(record_type: str) -> Callable[[sa.Engine, RunScope], Built]:
    try:
        return BUILDERS[record_type.upper()]
    except KeyError:
        raise KeyError(f"no builder for record type {record_type}") from None
