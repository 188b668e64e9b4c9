"""The SIS vendor hooks: one module per vendor, each a SisApiHook subclass (calpads_airflow.hooks.base).

``hook_classes()`` imports every module of this package, so a new vendor's hook module is found without
a change elsewhere (calpads_airflow.registry derives everything per vendor from them). Airflow lists
custom connection types from provider packages only: ``get_provider_info`` is this project's
``apache_airflow_provider`` entry point (pyproject.toml), which makes the vendors' connection types and
their form fields appear in the UI. The hooks work without it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from calpads_airflow.hooks.aeries import AeriesHook
from calpads_airflow.hooks.base import REGISTERED, SisApiHook
from calpads_airflow.hooks.oneroster import OneRosterHook
from calpads_airflow.hooks.powerschool import PowerSchoolHook

__all__ = ["AeriesHook", "OneRosterHook", "PowerSchoolHook", "get_provider_info", "hook_classes"]


def hook_classes() -> list[type[SisApiHook]]:
    """Every SIS vendor hook: those of this package's modules, and any registered elsewhere (a district's own
    vendor: calpads_airflow.registry imports the modules named in ``[calpads] sis_hook_modules``)."""
    for info in pkgutil.iter_modules(__path__, f"{__name__}."):
        importlib.import_module(info.name)
    return list(REGISTERED.values())


def get_provider_info() -> dict[str, Any]:
    hooks = hook_classes()
    return {
        "package-name": "calpads-pipeline",
        "name": "CALPADS pipeline",
        "description": "SIS API connections for the CALPADS extracts.",
        "versions": ["0.1.0"],
        "hooks": [{"integration-name": "CALPADS SIS APIs", "python-modules": [h.__module__ for h in hooks]}],
        "connection-types": [h.connection_type_info() for h in hooks],
    }
