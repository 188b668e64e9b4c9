"""Which LEAs this deployment serves (calpads.leas), and their file DAGs.

``[calpads] leas_file`` (AIRFLOW__CALPADS__LEAS_FILE) names the LEA file (or ``[calpads] leas_variable`` an Airflow
Variable holding the same document: read each time a DAG file is parsed); without either the deployment serves one LEA
as it always has (``calpads_sprg`` reading ``sis_db``). With it, each listed LEA gets one DAG per file it submits,
``calpads_<file>__<LEA code>``, built by the DAG files ``dags/calpads_leas_<nn>.py``: each builds the LEAs of its
shard (``LeaConfig.shard``; calpads_airflow.factories.lea_dags), so a county's or a state's LEAs are parsed by
``LEA_DAG_SHARDS`` processes, each well inside Airflow's DAG-file import timeout (docs/leas.md, "How many LEAs").

The LEA file holds no credentials: connection ids only (docs/leas.md).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from calpads.leas import LeaConfig, LeaConfigError, LeaDirectory, load_leas, parse_leas
from calpads_airflow import runtime

LEA_DAG_SHARDS = 16


def leas_file() -> str:
    return runtime.conf("leas_file", "").strip()


def leas_variable() -> str:
    return runtime.conf("leas_variable", "").strip()


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> LeaDirectory:
    from calpads_airflow.registry import api_sources

    return load_leas(path, known_sources=api_sources())


@functools.lru_cache(maxsize=4)
def _parse(name: str, text: str) -> LeaDirectory:
    import yaml

    from calpads_airflow.registry import api_sources

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        raise LeaConfigError(f"The Variable {name} is not valid YAML or JSON") from None
    return parse_leas(document, known_sources=api_sources(), name=f"The Variable {name}")


def _task_variable(key: str) -> str | None:
    from airflow.sdk import Variable

    return Variable.get(key, default=None)


def server_variable(key: str) -> str | None:
    """A Variable read inside an Airflow server (the api-server's CALPADS page): the Task SDK's Variable answers
    only in DAG parsing and tasks, the metadata database's model everywhere else."""
    from airflow.models.variable import Variable

    return Variable.get(key, default_var=None)


def directory(read_variable: Callable[[str], str | None] = _task_variable) -> LeaDirectory | None:
    """The listed LEAs (None: no LEA file, one LEA), from the file ``[calpads] leas_file`` or else the Variable named
    by ``[calpads] leas_variable`` (the same document as YAML or JSON; ``read_variable`` reads it: server_variable
    outside DAG parsing and tasks). A missing or invalid one raises LeaConfigError, which the UI shows as the DAG
    file's import error, naming each problem."""
    path, variable = leas_file(), leas_variable()
    if path:
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = 0   # load_leas says the file cannot be read
        return _load(path, mtime)
    if variable:
        text = read_variable(variable)
        if not text:
            raise LeaConfigError(f"[calpads] leas_variable names the Variable {variable}, which is not set")
        return _parse(variable, text)
    return None


def listed_leas() -> tuple[LeaConfig, ...]:
    found = directory()
    return found.leas if found else ()


def single_lea() -> LeaConfig:
    """The one LEA of a deployment without an LEA file: [calpads] sis_source and its connection."""
    source = runtime.sis_source()
    return LeaConfig.single(source, "sis_db" if source == "sql" else runtime.api_conn_id(source))


def served_leas() -> tuple[LeaConfig, ...]:
    """The LEAs this deployment submits for: the LEA file's, else the single one."""
    return listed_leas() or (single_lea(),)


def lea_for(code: str | None) -> LeaConfig:
    """The listed LEA with this code; None: the single LEA."""
    if code is None:
        return single_lea()
    found = directory()
    if found is None:
        raise ValueError(f"LEA {code} has DAGs but [calpads] leas_file is not set on this machine")
    return found.get(code)


def pools() -> list[tuple[str, int, str]]:
    """(pool, slots, description) of every listed LEA's SIS connection."""
    found = directory()
    return found.pools() if found else []
