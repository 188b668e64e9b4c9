"""What integration_health checks and documents, from the configuration: the DAG ids of [calpads] health_dags
(a listed LEA's own), and the data flows of the running configuration (calpads.health.dataflows_doc), for the
single LEA or a listed one (calpads.leas). Inside a task only: Variables and connections are read here."""

from __future__ import annotations

from typing import Any

from calpads.leas import FILE_TYPES, LeaConfig
from calpads_airflow import runtime
from calpads_airflow.registry import flow_words

# The DAGs each listed LEA has its own of (<id>__<code>): a [calpads] health_dags entry naming one means that
# LEA's own; any other (calpads_deadline_watch, calpads_maintenance) is the deployment's.
PER_LEA_DAGS = ("sis_nightly_pull", "afterschool_sync", "integration_health")


def health_dag_ids(lea: LeaConfig | None = None) -> list[str]:
    """[calpads] health_dags (default calpads_sprg,afterschool_sync). A listed LEA: each per-LEA DAG as its own
    (calpads_sprg -> calpads_sprg__<code>), a file it does not submit left out."""
    dag_ids = [d.strip() for d in runtime.conf("health_dags", "calpads_sprg,afterschool_sync").split(",")
               if d.strip()]
    if lea is None or not lea.listed:
        return dag_ids
    out = []
    for dag_id in dag_ids:
        file_type = dag_id.removeprefix("calpads_").upper() if dag_id.startswith("calpads_") else ""
        if file_type in FILE_TYPES:
            if file_type in lea.files:
                out.append(lea.dag_id(dag_id))
        elif dag_id in PER_LEA_DAGS:
            out.append(lea.dag_id(dag_id))
        else:
            out.append(dag_id)
    return out


def config_from_airflow(lea: LeaConfig | None = None) -> Any:
    """The running configuration (inside a task), for calpads.health.dataflows_doc.render; a listed LEA's own."""
    from airflow.sdk import Variable

    from calpads.alerts.roles import ROLE_VARIABLES
    from calpads.extracts.registry import record_types
    from calpads.health.dataflows_doc import IntegrationConfig
    from calpads_airflow.notifiers import recipients

    if lea is not None and lea.listed:
        return _lea_config(lea)
    conns = _connections(["sis_db", "calpads_store", "smtp_default", "afterschool_api", runtime.api_conn_id()])
    drop = Variable.get("afterschool_drop_path", default="")
    source = f"file drop {drop}" if drop else ("HTTP afterschool_api" if "afterschool_api" in conns else
                                               f"file drop {runtime.airflow_home()}/afterschool_drop")
    return IntegrationConfig(sis_source=runtime.sis_source(), writeback=runtime.writeback_kind(), connections=conns,
                             publish_root=str(runtime.publish_root()), recipients=recipients(),
                             afterschool_source=source, source_words=flow_words(),
                             record_types=record_types(),
                             role_recipients={r: [a.strip() for a in Variable.get(v, default="").split(",")
                                                  if a.strip()] for r, v in ROLE_VARIABLES.items()})


def _connections(conn_ids: list[str]) -> dict[str, str]:
    """conn id -> "type host" of each connection that exists (no credentials)."""
    from airflow.sdk import BaseHook

    conns: dict[str, str] = {}
    for cid in dict.fromkeys(conn_ids):
        try:
            conn: Any = BaseHook.get_connection(cid)
        except Exception:
            continue
        conns[cid] = f"{conn.conn_type or '?'} {conn.host or conn.schema or ''}".strip()
    return conns


def _lea_config(lea: LeaConfig) -> Any:
    """A listed LEA's data flows: its SIS and store connections, export, publish root, recipients, DAG ids."""
    from calpads.alerts.roles import ROLE_VARIABLES
    from calpads.health.dataflows_doc import IntegrationConfig

    drop, configured = runtime.afterschool_drop(lea)
    conn_id = runtime.afterschool_conn_id(lea)
    conns = _connections([lea.sis_conn_id, lea.store_conn_id, "smtp_default", *([conn_id] if conn_id else [])])
    source = f"file drop {drop}" if configured or not conn_id else f"HTTP {conn_id}"
    return IntegrationConfig(sis_source=lea.sis_source, writeback=runtime.writeback_kind(lea), connections=conns,
                             publish_root=str(runtime.publish_root(lea)), recipients=list(lea.recipients()),
                             afterschool_source=source, source_words=flow_words(), record_types=list(lea.files),
                             role_recipients={r: list(lea.emails.get(r, ())) for r in ROLE_VARIABLES},
                             sis_conn_id=lea.sis_conn_id, store_conn_id=lea.store_conn_id,
                             dag_suffix=f"__{lea.code}", lea=f"{lea.name} ({lea.code})")
