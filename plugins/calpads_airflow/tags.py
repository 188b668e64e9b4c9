"""The one list of DAG tags (the UI's tag filter). Every DAG's tags are members of DagTag; the DAG policy
test (tests/dags/test_dag_policy.py) refuses any other, so a new tag is added here first."""

from __future__ import annotations

from enum import StrEnum


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


def dag_tags(*tags: str) -> list[str]:
    """The tags as plain strings (what the serialized DAG stores): "calpads" first, then the DAG's own."""
    return [str(t) for t in dict.fromkeys([DagTag.CALPADS, *tags])]
