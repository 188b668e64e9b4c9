"""The SIS vendor hooks: one module per vendor, each a SisApiHook subclass (calpads_airflow.hooks.base).

``hook_classes()`` imports every module of this package, so a new vendor's hook module is found without
a change elsewhere (calpads_airflow.registry derives everything per vendor from them). Airflow lists
custom connection types from provider packages only: ``get_provider_info`` is this project's
``apache_airflow_provider`` entry point (pyproject.toml), which makes the vendors' connection types and
their form fields appear in the UI. The hooks work without it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from typing import Any

from calpads_airflow.hooks.aeries import AeriesHook
from calpads_airflow.hooks.base import REGISTERED, SisApiHook
from calpads_airflow.hooks.oneroster import OneRosterHook
from calpads_airflow.hooks.powerschool import PowerSchoolHook

__all__ = ["AeriesHook", "OneRosterHook", "PowerSchoolHook", "get_provider_info", "hook_classes"]


def hook_classes() -> list[type[SisApiHook]]:
    """Every SIS vendor hook: those of this package's modules, those of the modules named in
    ``[calpads] sis_hook_modules`` (a district's own vendor, kept outside this project: comma-separated module
    names on the workers' PYTHONPATH), and any registered elsewhere."""
    for info in pkgutil.iter_modules(__path__, f"{__name__}."):
        importlib.import_module(info.name)
    for name in _configured_modules():
        importlib.import_module(name)
    return list(REGISTERED.values())


def _configured_modules() -> list[str]:
    """The modules of ``[calpads] sis_hook_modules``. Airflow calls get_provider_info while it builds its
    configuration (the providers' config sections): ``conf`` does not exist yet and importing it then fails
    (a circular import), so the setting is read from its environment variable, the one place it can come from
    before the configuration exists."""
    configuration = sys.modules.get("airflow.configuration")
    if configuration is not None and not hasattr(configuration, "conf"):
        value = os.environ.get("AIRFLOW__CALPADS__SIS_HOOK_MODULES", "")
    else:
        from airflow.configuration import conf

        value = conf.get("calpads", "sis_hook_modules", fallback="")
    return [m.strip() for m in value.split(",") if m.strip()]


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
