"""Source choice by configuration: the SPRG pull over a vendor API.

``pull_sprg_api(source, conn_id, scope, program_codes, work_dir)`` returns the
same SprgPull as ``sql_sis.pull_sprg(engine, scope, program_codes)`` for the same
district. Sources: ``powerschool_api``, ``aeries_api``, ``oneroster``.
Credentials come only from the Airflow connection ``conn_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calpads.run_scope import RunScope
from calpads.sources.sql_sis import SprgPull

API_SOURCES = ("powerschool_api", "aeries_api", "oneroster")


def sis_api_name(source: str) -> str:
    """An API source's default Airflow connection id, which is also the name of its pool:
    sis_powerschool, sis_aeries, sis_oneroster."""
    if source not in API_SOURCES:
        raise ValueError(f"unknown SIS API source {source!r}; choose one of {', '.join(API_SOURCES)}")
    return f"sis_{source.removesuffix('_api')}"


def client_for(source: str, conn: Any) -> Any:
    """The source's API client for an Airflow Connection (or any object with host/login/password/extra_dejson)."""
    if source == "powerschool_api":
        from calpads.sources.powerschool_api import PowerSchoolClient, PowerSchoolSettings

        return PowerSchoolClient(PowerSchoolSettings.from_connection(conn))
    if source == "aeries_api":
        from calpads.sources.aeries_api import AeriesClient, AeriesSettings

        return AeriesClient(AeriesSettings.from_connection(conn))
    if source == "oneroster":
        from calpads.sources.oneroster import OneRosterClient, OneRosterSettings

        return OneRosterClient(OneRosterSettings.from_connection(conn))
    raise ValueError(f"unknown SIS source {source!r}; choose one of sql, {', '.join(API_SOURCES)}")


def get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def pull_sprg_api(source: str, conn_id: str, scope: RunScope, program_codes: list[str],
                  work_dir: str | Path) -> SprgPull:
    """The SPRG staging pull over `source`'s API; pages are checkpointed under work_dir/api_pages/."""
    if source not in API_SOURCES:
        raise ValueError(f"unknown SIS API source {source!r}; choose one of {', '.join(API_SOURCES)}")
    client = client_for(source, get_connection(conn_id))
    try:
        return client.pull_sprg(scope, list(program_codes), Path(work_dir))
    finally:
        client.close()
