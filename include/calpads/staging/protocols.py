"""The typed seams of the staging model (docs/sis-sources.md, "Data path"):

    SourceAdapter.stage(tables, scope, staged)    SIS -> staged contract tables
    Builder(staged, scope, context) -> Built      staged tables -> one CALPADS record type

A builder reads staged tables only; what else it needs (the afterschool store for LEAP and STAS)
comes in ``BuildContext``, explicitly.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from calpads.run_scope import RunScope
from calpads.staging.store import StagedTables


@dataclass
class Built:
    # The records, written to the run's records.parquet as they are: a frame (without its index), or an Arrow
    # table (SPRG's: its large districts' records never become a pandas frame in the extract).
    records: pd.DataFrame | pa.Table
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
class BuildContext:
    """What a builder may need beside the staged tables."""

    store_engine: sa.Engine | None = None   # calpads_store: the afterschool import (LEAP, STAS 13.24)


class SourceAdapter(Protocol):
    """Reads one SIS (database or vendor API) into the staged contract tables."""

    def stage(self, tables: Collection[str], scope: RunScope, staged: StagedTables) -> None:
        """Write each of ``tables`` (calpads.staging.contract names) for the run's scope into ``staged``;
        raise MissingSourceData (calpads.sources.api_common) when the SIS cannot supply one."""
        ...


class Builder(Protocol):
    def __call__(self, staged: StagedTables, scope: RunScope, context: BuildContext) -> Built: ...
