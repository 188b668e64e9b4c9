"""Shared base of the SIS API hooks: connection -> source client, pool, test_connection, data flows.

Connection fields are declared once per hook (``CONN_FIELDS``, ``UI_BEHAVIOUR``) and
served both ways Airflow reads them: the hook methods ``get_connection_form_widgets``
/ ``get_ui_field_behaviour`` (Airflow 2 style, still honoured) and the provider
info's ``conn-fields`` / ``ui-field-behaviour`` (Airflow >= 3.2, see
calpads_airflow.hooks.get_provider_info). Credentials are only ever read from the
connection, inside methods (never at import or DAG-parse time).
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk import BaseHook


class SisApiHook(BaseHook):
    """Base class; subclasses set ``source``, ``default_pool`` and the connection metadata."""

    conn_name_attr = "conn_id"
    default_conn_name = ""
    conn_type = ""
    hook_name = ""
    source: ClassVar[str] = ""
    default_pool: ClassVar[str] = ""
    CONN_FIELDS: ClassVar[dict[str, dict[str, Any]]] = {}
    UI_BEHAVIOUR: ClassVar[dict[str, Any]] = {}

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name

    # -- Airflow's connection form ---------------------------------------------------------
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        try:  # only in the webserver; not installed in workers or tests
            from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import IntegerField, PasswordField, StringField
        except ImportError:
            return {}
        out: dict[str, Any] = {}
        for name, spec in cls.CONN_FIELDS.items():
            types = spec["schema"].get("type", "string")
            label = lazy_gettext(spec["label"])
            if spec["schema"].get("format") == "password":
                out[name] = PasswordField(label, widget=BS3PasswordFieldWidget(), description=spec.get("description"))
            elif "integer" in types:
                out[name] = IntegerField(label, widget=BS3TextFieldWidget(), description=spec.get("description"),
                                         default=spec["schema"].get("default"))
            else:
                out[name] = StringField(label, widget=BS3TextFieldWidget(), description=spec.get("description"),
                                        default=spec["schema"].get("default"))
        return out

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, dict) else list(v) for k, v in cls.UI_BEHAVIOUR.items()}

    @classmethod
    def connection_type_info(cls) -> dict[str, Any]:
        """This hook's entry of the provider info's connection-types (Airflow >= 3.2 form)."""
        b = cls.UI_BEHAVIOUR
        return {
            "hook-class-name": f"{cls.__module__}.{cls.__qualname__}",
            "hook-name": cls.hook_name,
            "connection-type": cls.conn_type,
            "conn-fields": {k: {kk: vv for kk, vv in v.items()} for k, v in cls.CONN_FIELDS.items()},
            "ui-field-behaviour": {"hidden-fields": list(b.get("hidden_fields", [])),
                                   "relabeling": dict(b.get("relabeling", {})),
                                   "placeholders": dict(b.get("placeholders", {}))},
        }

    # -- the source ----------------------------------------------------------------------------
    @property
    def pool(self) -> str:
        """The Airflow pool for tasks that call this SIS (create it: ``airflow pools set <name> <slots> ...``)."""
        return self.default_pool

    def get_client(self) -> Any:
        from calpads.sources.api_sources import client_for

        return client_for(self.source, self.get_connection(self.conn_id))

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

    def pull_sprg(self, scope: Any, program_codes: list[str], work_dir: Any) -> Any:
        client = self.get_client()
        try:
            return client.pull_sprg(scope, list(program_codes), work_dir)
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
