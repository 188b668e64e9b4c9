"""OneRoster 1.2 rostering hook (OAuth2 client credentials). Rostering and enrollment only."""

from __future__ import annotations

from typing import Any, ClassVar

from calpads_airflow.hooks.base import SisApiHook, retry_fields


class OneRosterHook(SisApiHook):
    """Connection: Host = the OneRoster service base URL (the part before
    /ims/oneroster/rostering/v1p2), Login/Password = the OAuth2 client ID and secret;
    extras: token URL and scope, and for SENR, STAS and LEAP the supplementary folder and the Reporting LEA."""

    default_conn_name = "sis_oneroster"   # also its pool
    conn_type = "calpads_oneroster"
    hook_name = "OneRoster 1.2 (CALPADS)"
    source = "oneroster"
    client_class = "calpads.sources.oneroster:OneRosterClient"
    flow_system = "OneRoster 1.2 rostering"
    read_permission = "the OneRoster app's roster-core.readonly scope"
    CONN_FIELDS: ClassVar[dict[str, dict[str, Any]]] = {
        **retry_fields(),
        "token_url": {"label": "Token URL", "description": "OAuth2 token endpoint; blank = <host>/oauth/token.",
                      "schema": {"type": ["string", "null"]}},
        "scope": {"label": "Scope", "schema": {"type": ["string", "null"], "default":
                  "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"}},
        "supplementary_folder": {"label": "Supplementary folder", "description": "The folder of the district's "
                                 "CSV exports for SENR, STAS and LEAP (docs/sis-sources.md).",
                                 "schema": {"type": ["string", "null"]}},
        "reporting_lea": {"label": "Reporting LEA code", "description": "The 7-digit CALPADS Reporting LEA code.",
                          "schema": {"type": ["string", "null"]}},
    }
    UI_BEHAVIOUR: ClassVar[dict[str, Any]] = {
        "hidden_fields": ["schema", "port", "extra"],
        "relabeling": {"host": "OneRoster base URL", "login": "Client ID", "password": "Client secret"},
        "placeholders": {"host": "https://oneroster.example.org"},
    }
