"""The DAGs per LEA (calpads.leas): ``calpads_<file>``, ``sis_nightly_pull``, ``afterschool_sync`` and
``integration_health`` of the single LEA, or ``calpads_<file>__<code>``, ``sis_nightly_pull__<code>`` (an LEA whose
SIS is read by SQL), ``afterschool_sync__<code>`` and ``integration_health__<code>`` of each LEA of the LEA file,
built shard by shard (calpads_airflow.leas.LEA_DAG_SHARDS DAG files)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from calpads_airflow.factories.afterschool import build_afterschool_dag
from calpads_airflow.factories.file_dag import build_calpads_dag
from calpads_airflow.factories.health import build_health_dag
from calpads_airflow.factories.sis_pull import build_sis_pull_dag, has_sis_pull
from calpads_airflow.leas import LEA_DAG_SHARDS, directory, listed_leas


def single_lea_only(build: Callable[[], Any]) -> Any:
    """A DAG of the single-LEA install: None when an LEA file lists the LEAs (each listed LEA gets its own, from
    build_lea_dags)."""
    return None if directory() is not None else build()


def single_lea_file_dag(record_type: str) -> Any:
    """``calpads_<file>`` of the single LEA, or None when an LEA file lists the LEAs (they get their own)."""
    return single_lea_only(lambda: build_calpads_dag(record_type))


def build_lea_dags(shard: int, shards: int = LEA_DAG_SHARDS) -> dict[str, Any]:
    """dag id -> DAG for every listed LEA in this shard: a file DAG per file it submits, its nightly SIS pull (a
    SQL SIS), its afterschool sync and its integration checks."""
    dags: dict[str, Any] = {}
    for lea in listed_leas():
        if lea.shard(shards) == shard:
            built = [build_calpads_dag(record_type, lea=lea) for record_type in lea.files]
            if has_sis_pull(lea):
                built.append(build_sis_pull_dag(lea=lea))
            built += [build_afterschool_dag(lea), build_health_dag(lea)]
            dags.update({dag.dag_id: dag for dag in built})
    return dags
