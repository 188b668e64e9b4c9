"""The one list of DAG tags (the UI's tag filter). Every DAG's tags are members of DagTag; the DAG policy
test (tests/dags/test_dag_policy.py) refuses any other, so a new tag is added here first."""

from __future__ import annotations

from enum import StrEnum

from calpads.leas import LeaConfig


class DagTag(StrEnum):
    CALPADS = "calpads"             # every DAG of the project
    SPRG = "SPRG"                   # the CALPADS file DAGs: their record type
    SENR = "SENR"
    STAS = "STAS"
    LEAP = "LEAP"
    ASSETS = "assets"               # sis_nightly_pull: produces the SIS assets
    AFTERSCHOOL = "afterschool"
    HEALTH = "health"
    DEADLINES = "deadlines"
    MAINTENANCE = "maintenance"


LEA_TAG_PREFIX = "LEA "   # + the 7-digit CDS code: the tag of a listed LEA's DAGs (calpads.leas)


def lea_tags(lea: LeaConfig) -> list[str]:
    """A listed LEA's DAGs carry "LEA <code>", so the UI's tag filter shows one LEA's DAGs."""
    return [f"{LEA_TAG_PREFIX}{lea.code}"] if lea.listed else []


def dag_tags(*tags: str) -> list[str]:
    """The tags as plain strings (what the serialized DAG stores): "calpads" first, then the DAG's own."""
    return [str(t) for t in dict.fromkeys([DagTag.CALPADS, *tags])]
