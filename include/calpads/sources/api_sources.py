"""Source choice by configuration: the SPRG pull over a vendor API.

``pull_sprg_api(source, conn_id, scope, program_codes, work_dir)`` returns the
same SprgPull as ``sql_sis.pull_sprg(engine, scope, program_codes)`` for the same
district. The API sources are the vendor hooks of calpads_airflow.hooks, listed by
calpads_airflow.registry (``python -m calpads_airflow.registry sources``).
Credentials come only from the Airflow connection ``conn_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calpads.run_scope import RunScope
from calpads.sources.sql_sis import SprgPull


def sis_api_name(source: str) -> str:
    """An API source's default Airflow connection id, which is also the name of its pool
    (sis_powerschool, sis_aeries, ...); ValueError for an unknown source."""
    from calpads_airflow.registry import hook_for

    return hook_for(source).default_conn_name


def client_for(source: str, conn: Any) -> Any:
    """The source's API client for an Airflow Connection (or any object with host/login/password/extra_dejson)."""
    from calpads_airflow.registry import client_for as registry_client_for

    return registry_client_for(source, conn)


def get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def pull_sprg_api(source: str, conn_id: str, scope: RunScope, program_codes: list[str],
                  work_dir: str | Path) -> SprgPull:
    """The SPRG staging pull over `source`'s API; pages are checkpointed under work_dir/api_pages/."""
    from calpads.sources.sprg_frames import client_sprg_pull

    client = client_for(source, get_connection(conn_id))
    try:
        return client_sprg_pull(client, scope, list(program_codes), Path(work_dir))
    finally:
        client.close()
