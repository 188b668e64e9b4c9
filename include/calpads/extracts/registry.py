"""Which builder makes which record type. A new CALPADS file = a layout YAML + a builder here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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
    # Extra report tables (file name -> frame, no names/birth dates/SSIDs) that the run's report folder gets.
    reports: dict[str, pd.DataFrame] = field(default_factory=dict)
    # What the coordinator must know about how this extract was built, in plain words (the run's report and
    # manifest show them), e.g. a SIS column that is missing.
    notes: list[str] = field(default_factory=list)
    # Facts the run's manifest records beside its standard keys, e.g. {"counted_through": "2026-05-15"} (STAS).
    facts: dict[str, Any] = field(default_factory=dict)
    # Local Student IDs of the students still enrolled in the run's scope (transaction-processed files): a delete
    # of one of their records needs allow_enrolled_deletes. None = the builder does not know (no check).
    enrolled_students: list[str] | None = None


@dataclass(frozen=True)
class ApiSource:
    """A SIS read over a vendor API instead of SQL (calpads.sources.api_sources)."""

    kind: str          # powerschool_api | aeries_api | oneroster
    conn_id: str
    work_dir: Path     # page checkpoints, so a retry resumes where the failed attempt stopped


SisSource = sa.Engine | ApiSource


def _sprg(sis: SisSource, scope: RunScope, check: Callable[[Any], None] | None = None) -> Built:
    from calpads.extracts.common import program_set
    from calpads.extracts.sprg import build_sprg
    from calpads.layouts import load_layout
    from calpads.sources.sql_sis import pull_sprg

    codes = program_set(load_layout("SPRG"), scope)
    if isinstance(sis, ApiSource):
        from calpads.sources.api_sources import pull_sprg_api

        pulled = pull_sprg_api(sis.kind, sis.conn_id, scope, codes, sis.work_dir)
    else:
        pulled = pull_sprg(sis, scope, codes)
    if check is not None:
        check(pulled)   # the staging gate (calpads.quality.staging): fails the run before anything is built
    built = build_sprg(pulled, scope)
    enrolled = None if pulled.enrolled_students is None else [
        str(n) for n in pulled.enrolled_students["student_number"].dropna()]
    return Built(built.records, built.not_extracted, pulled.lea,
                 [str(c) for c in pulled.scoped_schools["school_code"].dropna()], enrolled_students=enrolled)


BUILDERS: dict[str, Callable[[SisSource, RunScope], Any]] = {"SPRG": _sprg}


def builder(record_type: str) -> Callable[[SisSource, RunScope], Built]:
    if record_type.upper() in BUILDERS:
        return BUILDERS[record_type.upper()]
    # Otherwise the layout names its builder ("module:function"), so a new record type is a layout
    # YAML + a builder module, with no change here.
    from calpads.layouts import load_layout

    try:
        ref = load_layout(record_type).raw.get("builder")
    except FileNotFoundError:
        ref = None
    if not ref:
        raise KeyError(f"no builder for record type {record_type}")
    module, _, name = str(ref).partition(":")
    return getattr(importlib.import_module(module), name or "build")
