"""PowerSchool SIS plugin API hook (OAuth2 client credentials)."""

from __future__ import annotations

from typing import Any, ClassVar

from calpads_airflow.hooks.base import SisApiHook, retry_fields


class PowerSchoolHook(SisApiHook):
    """Connection: Host = the PowerSchool server URL (https://district.powerschool.com),
    Login = the plugin's client ID, Password = its client secret (System > System
    Settings > Plugin Management Configuration > plugin > Data Provider Configuration)."""

    default_conn_name = "sis_powerschool"   # also its pool
    conn_type = "calpads_powerschool"
    hook_name = "PowerSchool SIS (CALPADS)"
    source = "powerschool_api"
    client_class = "calpads.sources.powerschool_api:PowerSchoolClient"
    flow_system = "PowerSchool plugin API"
    read_permission = "plugin read access (ViewOnly)"
    CONN_FIELDS: ClassVar[dict[str, dict[str, Any]]] = {
        **retry_fields(),
        "participation_table": {
            "label": "Participation table", "description": "Table the pipeline writes participation to.",
            "schema": {"type": ["string", "null"], "default": "S_CA_STU_CALPADSPROGRAMS_C"},
        },
    }
    UI_BEHAVIOUR: ClassVar[dict[str, Any]] = {
        "hidden_fields": ["schema", "port", "extra"],
        "relabeling": {"host": "PowerSchool server URL", "login": "Client ID", "password": "Client secret"},
        "placeholders": {"host": "https://district.powerschool.com"},
    }
