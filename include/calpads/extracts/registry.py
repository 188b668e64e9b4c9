"""Which builder makes which record type, and which staged tables it reads.

A new CALPADS file = a layout YAML + a builder module with a ``RecordTypeSpec`` (the layout's
``builder`` key names it as "module:NAME"), or an entry in RECORD_TYPES here. Every builder reads
staged tables only (calpads.staging); ``adapter_for`` turns the run's SIS source into the
adapter that stages them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from calpads.staging.protocols import BuildContext, Builder, Built, SourceAdapter

__all__ = ["ApiSource", "BuildContext", "Built", "RecordTypeSpec", "SisSource", "adapter_for", "builder",
           "record_type", "record_types"]


@dataclass(frozen=True)
class ApiSource:
    """A SIS read over a vendor API instead of SQL (calpads.sources.api_sources)."""

    kind: str          # powerschool_api | aeries_api | oneroster
    conn_id: str
    work_dir: Path     # page checkpoints, so a retry resumes where the failed attempt stopped


SisSource = sa.Engine | ApiSource


@dataclass(frozen=True)
class RecordTypeSpec:
    tables: tuple[str, ...]   # the staged tables (calpads.staging.contract) the builder reads
    build: Builder


def _known() -> dict[str, RecordTypeSpec]:
    from calpads.extracts import leap, senr, sprg, stas

    return {"SPRG": RecordTypeSpec(sprg.TABLES, sprg.build), "SENR": RecordTypeSpec(senr.TABLES, senr.build),
            "STAS": RecordTypeSpec(stas.TABLES, stas.build), "LEAP": RecordTypeSpec(leap.TABLES, leap.build)}


def record_type(name: str) -> RecordTypeSpec:
    known = _known()
    if name.upper() in known:
        return known[name.upper()]
    from calpads.layouts import load_layout

    try:
        ref = load_layout(name).raw.get("builder")
    except FileNotFoundError:
        ref = None
    if not ref:
        raise KeyError(f"no builder for record type {name}")
    module, _, attr = str(ref).partition(":")
    spec = vars(importlib.import_module(module)).get(attr or "RECORD_TYPE")
    if not isinstance(spec, RecordTypeSpec):
        raise KeyError(f"the layout of {name} names {ref}, which is not a RecordTypeSpec")
    return spec


def record_types() -> list[str]:
    """Every record type with a builder, so with a CALPADS file DAG: the four above and any layout naming one."""
    from importlib import resources

    names = sorted(p.name[:-5].upper() for p in resources.files("calpads.layouts").iterdir()
                   if p.name.endswith(".yaml") and p.name != "code_sets.yaml")
    out = []
    for name in names:
        try:
            record_type(name)
        except KeyError:   # a layout without a builder has no DAG
            continue
        out.append(name)
    return out


def builder(name: str) -> Builder:
    return record_type(name).build


def adapter_for(sis: SisSource, record_type: str) -> SourceAdapter:
    """The source adapter of a run's SIS for one record type: the database (SQL) or a vendor API."""
    if isinstance(sis, ApiSource):
        from calpads.staging.api_adapter import ApiAdapter

        return ApiAdapter(sis.kind, sis.conn_id, sis.work_dir, (record_type.upper(),))
    from calpads.staging.sql_adapter import SqlAdapter

    return SqlAdapter(sis)
