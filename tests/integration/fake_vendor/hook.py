"""TableSIS's hook: importing this module makes ``tablesis_api`` a SIS source (calpads_airflow.registry)."""

from __future__ import annotations

from typing import Any, ClassVar

from calpads_airflow.hooks.base import SisApiHook, retry_fields


class TableSisHook(SisApiHook):
    """Connection: Host = the TableSIS server URL, Password = the API key."""

    default_conn_name = "sis_tablesis"   # also its pool
    conn_type = "calpads_tablesis"
    hook_name = "TableSIS (CALPADS test vendor)"
    source = "tablesis_api"
    client_class = "tests.integration.fake_vendor.client:TableSisClient"
    flow_system = "TableSIS API"
    read_permission = "the API key's read access"
    CONN_FIELDS: ClassVar[dict[str, dict[str, Any]]] = retry_fields()
    UI_BEHAVIOUR: ClassVar[dict[str, Any]] = {"hidden_fields": ["schema", "port", "login", "extra"],
                                             "relabeling": {"password": "API key"}}
