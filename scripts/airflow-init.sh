#!/usr/bin/env bash
# One-off initialisation of a CeleryExecutor deployment, run before the other services:
# the `airflow-init` service of docker-compose.yaml, and tests/integration/topology.py
# (the same script, on this machine). Idempotent: safe to run at every `docker compose up`.
#
#   1. migrate the metadata database
#   2. the admin login of the simple auth manager (password from _AIRFLOW_WWW_USER_PASSWORD)
#   3. connections and variables from CALPADS_* settings (.env); a blank setting is skipped,
#      e.g. when a secrets backend holds it (docs/production.md)
#   4. the pools of the SIS API sources (CALPADS_SIS_API_SLOTS each)
set -euo pipefail
AIRFLOW="${AIRFLOW_BIN:-airflow}"

echo "== migrating the metadata database"
"$AIRFLOW" db migrate

# Task logs hold the pipeline's log lines: Airflow gives [logging] file_task_handler_new_folder_permissions to a
# log's last folder only (the dag_id=/run_id= levels follow the umask), so the log folder itself is owner-only.
logs="${AIRFLOW__LOGGING__BASE_LOG_FOLDER:-${AIRFLOW_HOME:-$HOME/airflow}/logs}"
mkdir -p "$logs" && chmod 700 "$logs" || echo "warning: could not make the task log folder $logs owner-only (0700)"

echo "== admin login"
python - <<'PY'
import json, os, sys
from pathlib import Path

users = [u.split(":")[0] for u in os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "").split(",") if u]
path = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
password = os.environ.get("_AIRFLOW_WWW_USER_PASSWORD", "")
if not (users and path):
    sys.exit("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS and ..._PASSWORDS_FILE must be set")
if len(password) < 12:
    sys.exit("_AIRFLOW_WWW_USER_PASSWORD must be set (12 characters or more)")
file = Path(path)
file.parent.mkdir(parents=True, exist_ok=True)
file.write_text(json.dumps({users[0]: password}) + "\n")
file.chmod(0o600)
print(f"login '{users[0]}' written to {file}")
PY

echo "== connections, variables, pools"
python - <<'PY'
import os

from sqlalchemy import delete

from airflow.models.connection import Connection
from airflow.models.pool import Pool
from airflow.models.variable import Variable
from airflow.utils.session import create_session

CONNECTIONS = {"sis_db": "CALPADS_SIS_DB_URI", "calpads_store": "CALPADS_STORE_URI",
               "smtp_default": "CALPADS_SMTP_URI"}
VARIABLES = {"calpads_publish_root": "CALPADS_PUBLISH_ROOT", "calpads_work_root": "CALPADS_WORK_ROOT",
             "integration_team_emails": "CALPADS_TEAM_EMAILS"}
with create_session() as session:
    for conn_id, setting in CONNECTIONS.items():
        uri = os.environ.get(setting, "").strip()
        if not uri:
            print(f"{conn_id}: {setting} blank, skipped (secrets backend or set in the UI)")
            continue
        session.execute(delete(Connection).where(Connection.conn_id == conn_id))
        session.add(Connection(conn_id=conn_id, uri=uri))
        print(f"{conn_id}: set from {setting}")  # never the URI: it holds the password
    # Run notes (plugins/calpads_airflow/run_notes.py): the file DAGs' last task writes its run's note through the
    # REST API as the admin login; the api-server's address comes from the execution API URL.
    admin = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "").split(":")[0]
    password = os.environ.get("_AIRFLOW_WWW_USER_PASSWORD", "")
    if admin and password:
        session.execute(delete(Connection).where(Connection.conn_id == "airflow_api"))
        session.add(Connection(conn_id="airflow_api", conn_type="http", login=admin, password=password))
        print("airflow_api: the admin login, for run notes")
for key, setting in VARIABLES.items():
    value = os.environ.get(setting, "").strip()
    if value:
        Variable.set(key, value)
        print(f"{key}: set from {setting}")
    else:
        print(f"{key}: {setting} blank, skipped")
# One pool per SIS API keeps parallel tasks under the vendor's rate limit (the vendors' hooks name them), and
# one per SIS connection of the LEA file's LEAs with the slots their entries ask for.
from calpads_airflow.registry import pools
from calpads_airflow.leas import pools as lea_pools

for pool, slots, description in pools():
    Pool.create_or_update_pool(pool, int(os.environ.get("CALPADS_SIS_API_SLOTS") or slots), description,
                               include_deferred=False)
for pool, slots, description in lea_pools():
    Pool.create_or_update_pool(pool, slots, description, include_deferred=False)
PY

echo "== airflow-init done"
