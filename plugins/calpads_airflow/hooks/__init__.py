"""SIS API hooks: PowerSchool, Aeries v5, OneRoster 1.2.

Airflow lists custom connection types from provider packages only; to show these
in the UI, register ``get_provider_info`` as an ``apache_airflow_provider`` entry
point (see the report in the hand-over). The hooks work without it.
"""

from __future__ import annotations

from typing import Any

from calpads_airflow.hooks.aeries import AeriesHook
from calpads_airflow.hooks.oneroster import OneRosterHook
from calpads_airflow.hooks.powerschool import PowerSchoolHook

HOOKS = (PowerSchoolHook, AeriesHook, OneRosterHook)
HOOK_FOR_SOURCE = {h.source: h for h in HOOKS}

__all__ = ["AeriesHook", "HOOKS", "HOOK_FOR_SOURCE", "OneRosterHook", "PowerSchoolHook", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "calpads-pipeline",
        "name": "CALPADS pipeline",
        "description": "SIS API connections for the CALPADS extracts.",
        "versions": ["0.1.0"],
        "hooks": [{"integration-name": "CALPADS SIS APIs", "python-modules": [h.__module__ for h in HOOKS]}],
        "connection-types": [h.connection_type_info() for h in HOOKS],
    }
