"""The base of the SIS vendor hooks; the hook classes are the registry of SIS API sources
(calpads_airflow.registry): a vendor is one hook module in this package, one client module in
calpads.sources and one test server in tests/integration/vendor_servers.

A hook declares, once, everything the pipeline needs to know about its vendor:
- ``source``: the value of ``[calpads] sis_source`` that selects it (``powerschool_api``);
- ``conn_type``, ``hook_name``, ``CONN_FIELDS`` (typed extras), ``UI_BEHAVIOUR``: the connection form,
  served to Airflow as the provider info's ``conn-fields`` / ``ui-field-behaviour`` (Airflow >= 3.2
  reads them there; the hook methods ``get_connection_form_widgets`` / ``get_ui_field_behaviour`` are
  deprecated since 3.2 and not defined here);
- ``default_conn_name``: the default connection id, which is also the name of its Airflow pool;
- ``client_class``: ``"module:Class"`` of the source client, built by ``Class.for_connection``;
- ``flow_system`` / ``read_permission``: the data-flow page's words for the vendor.

The connection is read the way Airflow's HTTP hooks read theirs: the host may carry the scheme
(``https://district.example``), otherwise the schema field (default ``https``) and the port are
added; extras are read by their plain names (how Airflow 3's connection form saves them).
Credentials are only ever read from the connection, inside methods (never at import or DAG-parse time).
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from calpads.sources.api_common import ApiConnection

# Every concrete hook, by source, in the order their modules were imported (calpads_airflow.registry).
REGISTERED: dict[str, type[SisApiHook]] = {}


class SisApiHook(BaseHook):
    """Base class; a subclass that sets ``source`` registers itself as that SIS API source."""

    conn_name_attr = "conn_id"
    default_conn_name = ""
    conn_type = ""
    hook_name = ""
    source: ClassVar[str] = ""
    client_class: ClassVar[str] = ""
    flow_system: ClassVar[str] = ""
    read_permission: ClassVar[str] = ""
    pool_slots: ClassVar[int] = 2
    CONN_FIELDS: ClassVar[dict[str, dict[str, Any]]] = {}
    UI_BEHAVIOUR: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.source:
            required = ("conn_type", "hook_name", "default_conn_name", "client_class")
            missing = [a for a in required if not getattr(cls, a)]
            if missing:
                raise TypeError(f"SIS hook {cls.__qualname__} (source {cls.source!r}) must set {', '.join(missing)}")
            REGISTERED[cls.source] = cls

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name

    # -- Airflow's connection form (provider info, Airflow >= 3.2) ------------------------------
    @classmethod
    def connection_type_info(cls) -> dict[str, Any]:
        """This hook's entry of the provider info's connection-types."""
        b = cls.UI_BEHAVIOUR
        return {
            "hook-class-name": f"{cls.__module__}.{cls.__qualname__}",
            "hook-name": cls.hook_name,
            "connection-type": cls.conn_type,
            "conn-fields": {k: dict(v) for k, v in cls.CONN_FIELDS.items()},
            "ui-field-behaviour": {"hidden-fields": list(b.get("hidden_fields", [])),
                                   "relabeling": dict(b.get("relabeling", {})),
                                   "placeholders": dict(b.get("placeholders", {}))},
        }

    # -- the connection, read once for the client -------------------------------------------------
    @classmethod
    def base_url(cls, conn: Any) -> str:
        """The server URL, as Airflow's HTTP hooks build it: the host when it has a scheme, else
        ``<schema or https>://<host>``, then ``:<port>`` when set; no trailing slash; '' when no host."""
        host = (conn.host or "").rstrip("/")
        if not host:
            return ""
        url = host if "://" in host else f"{getattr(conn, 'schema', None) or 'https'}://{host}"
        if getattr(conn, "port", None) and url.count(":") < 2:
            url = f"{url}:{conn.port}"
        return url

    @classmethod
    def extras(cls, conn: Any) -> dict[str, Any]:
        """The connection's extras by plain name; blanks (a form field left empty) are dropped."""
        return {k: v for k, v in dict(conn.extra_dejson or {}).items() if v not in (None, "")}

    @classmethod
    def api_connection(cls, conn: Any) -> ApiConnection:
        return ApiConnection(base_url=cls.base_url(conn), login=conn.login or None, password=conn.password or None,
                             extra=cls.extras(conn))

    @classmethod
    def client_for_connection(cls, conn: Any) -> Any:
        """The source client for an Airflow Connection (or any object with host/login/password/extra_dejson)."""
        module, _, name = cls.client_class.partition(":")
        return getattr(importlib.import_module(module), name).for_connection(cls.api_connection(conn))

    # -- the source ----------------------------------------------------------------------------
    @classmethod
    def pool_name(cls) -> str:
        """The Airflow pool for tasks that call this SIS (``python -m calpads_airflow.registry pools``)."""
        return cls.default_conn_name

    @property
    def pool(self) -> str:
        return self.pool_name()

    def get_client(self) -> Any:
        return self.client_for_connection(self.get_connection(self.conn_id))

    def get_conn(self) -> Any:
        return self.get_client()

    def test_connection(self) -> tuple[bool, str]:
        try:
            client = self.get_client()
        except Exception as exc:  # the UI shows the text: ours carry no secrets
            return False, str(exc)
        try:
            return client.test_connection()
        finally:
            client.close()

    def check_data_flows(self, flows: list[str]) -> list[Any]:
        from calpads.sources.api_common import check_data_flows

        client = self.get_client()
        try:
            return check_data_flows(client, flows)
        finally:
            client.close()


def retry_fields() -> dict[str, dict[str, Any]]:
    """Connection extras shared by every SIS API hook."""
    return {
        "page_size": {"label": "Page size", "description": "Records per request (capped by the SIS).",
                      "schema": {"type": ["integer", "null"], "default": 1000}},
        "read_timeout": {"label": "Read timeout (s)", "schema": {"type": ["integer", "null"], "default": 120}},
        "max_attempts": {"label": "Attempts per request", "description": "Retries on 429/5xx with backoff.",
                         "schema": {"type": ["integer", "null"], "default": 6}},
    }
