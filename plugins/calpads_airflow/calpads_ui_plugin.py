"""Registers the CALPADS page with the Airflow UI (Airflow 3.1+ plugin interface, docs: "Plugins",
https://airflow.apache.org/docs/apache-airflow/stable/administration-and-deployment/plugins.html).

- ``fastapi_apps``: the api-server mounts calpads_airflow.ui.app at ``/calpads`` (behind Airflow's own
  authentication: see that module).
- ``external_views``: a "CALPADS" entry in the UI's navigation (the page in an iframe) and a "CALPADS"
  tab on each DAG run (that run's verdict, files and report). Hrefs are relative to the UI's base URL.

Airflow imports every file of the plugins folder under its file name (hence this file's unique name).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from calpads_airflow.ui.app import app as calpads_app


class CalpadsUiPlugin(AirflowPlugin):
    name = "calpads_ui"
    fastapi_apps = [{"app": calpads_app, "url_prefix": "/calpads", "name": "CALPADS readiness"}]
    external_views = [
        {"name": "CALPADS", "href": "calpads/", "destination": "nav", "url_route": "calpads"},
        {"name": "CALPADS", "href": "calpads/run/{DAG_ID}/{RUN_ID}", "destination": "dag_run",
         "url_route": "calpads_run"},
    ]
