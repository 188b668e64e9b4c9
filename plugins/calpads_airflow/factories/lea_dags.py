"""The file DAGs per LEA (calpads.leas): ``calpads_<file>`` of the single LEA, or ``calpads_<file>__<code>`` of each
LEA of the LEA file, built shard by shard (calpads_airflow.leas.LEA_DAG_SHARDS DAG files)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from calpads_airflow.factories.file_dag import build_calpads_dag
from calpads_airflow.leas import LEA_DAG_SHARDS, directory, listed_leas


def single_lea_only(build: Callable[[], Any]) -> Any:
    """A DAG of the single-LEA install: None when an LEA file lists the LEAs. The SIS pull, the afterschool sync
    and the integration checks read one LEA's SIS and afterschool platform; with an LEA file each LEA has only
    its file DAGs (docs/leas.md, "What a listed LEA does not have yet")."""
    return None if directory() is not None else build()


def single_lea_file_dag(record_type: str) -> Any:
    """``calpads_<file>`` of the single LEA, or None when an LEA file lists the LEAs (they get their own)."""
    return single_lea_only(lambda: build_calpads_dag(record_type))


def build_lea_dags(shard: int, shards: int = LEA_DAG_SHARDS) -> dict[str, Any]:
    """dag id -> DAG for every file of every listed LEA in this shard."""
    dags: dict[str, Any] = {}
    for lea in listed_leas():
        if lea.shard(shards) == shard:
            for record_type in lea.files:
                dag = build_calpads_dag(record_type, lea=lea)
                dags[dag.dag_id] = dag
    return dags
