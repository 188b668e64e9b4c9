# Environment for running the project locally (sourced by setup/demo/test scripts).
# Everything lives under the project folder; nothing is installed system-wide.
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PROJECT_ROOT
export VENV="${VENV:-$PROJECT_ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PROJECT_ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PROJECT_ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$PROJECT_ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
# Task logs hold the pipeline's log lines (record ids, counts, paths): owner-only, not Airflow's 0o664/0o775.
export AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS="${AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS:-0o600}"
export AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS="${AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS:-0o700}"
export GX_ANALYTICS_ENABLED=false
export PYTHONPATH="$PROJECT_ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}"
# Embedded defaults for the connections and variables (a district overrides them in Airflow).
export DEMO_DIR="${DEMO_DIR:-$PROJECT_ROOT/demo_out}"
export AIRFLOW_CONN_SIS_DB="${AIRFLOW_CONN_SIS_DB:-sqlite:///$DEMO_DIR/demo_sis.db}"
export AIRFLOW_CONN_CALPADS_STORE="${AIRFLOW_CONN_CALPADS_STORE:-sqlite:///$AIRFLOW_HOME/calpads_store.db}"
export AIRFLOW_CONN_SMTP_DEFAULT="${AIRFLOW_CONN_SMTP_DEFAULT:-smtp://127.0.0.1:8025?disable_tls=true&disable_ssl=true&from_email=calpads-pipeline%40district.example&timeout=10&retry_limit=1}"
export AIRFLOW_VAR_CALPADS_PUBLISH_ROOT="${AIRFLOW_VAR_CALPADS_PUBLISH_ROOT:-file://$DEMO_DIR/published}"
export AIRFLOW_VAR_CALPADS_WORK_ROOT="${AIRFLOW_VAR_CALPADS_WORK_ROOT:-$AIRFLOW_HOME/calpads_work}"
export AIRFLOW_VAR_INTEGRATION_TEAM_EMAILS="${AIRFLOW_VAR_INTEGRATION_TEAM_EMAILS:-integration-team@district.example}"
export AIRFLOW_VAR_AFTERSCHOOL_DROP_PATH="${AIRFLOW_VAR_AFTERSCHOOL_DROP_PATH:-$DEMO_DIR/afterschool}"
# An empty log file readable by its owner only (the scripts' own logs, whatever the umask); ">" keeps its mode.
private_log() { (umask 077 && : >"$1") && chmod 600 "$1"; }
# Laptop settings for `airflow standalone` (docs/production.md, "Quickstart on a laptop"):
# - a few LocalExecutor workers, not one per [core] parallelism (32 by default) on a 2-core laptop;
# - the UI's address: a port other than 8080 needs AIRFLOW__API__PORT *and* the base URL and execution API URL,
#   which tasks call (set AIRFLOW__API__PORT before sourcing this file);
# - scheduled runs and the trigger form's default year: the demo district's (DEMO_YEAR);
# - the run notes' connection (plugins/calpads_airflow/run_notes.py): the admin login scripts/setup.sh wrote.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://localhost:${AIRFLOW__API__PORT:-8080}}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-$AIRFLOW__API__BASE_URL/execution/}"
export AIRFLOW__CALPADS__DEFAULT_ACADEMIC_YEAR="${AIRFLOW__CALPADS__DEFAULT_ACADEMIC_YEAR:-${DEMO_YEAR:-2025-2026}}"
export ADMIN_PASSWORD_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
if [ -z "${AIRFLOW_CONN_AIRFLOW_API:-}" ] && [ -r "$ADMIN_PASSWORD_FILE" ]; then
  AIRFLOW_CONN_AIRFLOW_API="$(python3 -c 'import json, sys, urllib.parse as u; pw = json.load(open(sys.argv[1]))["admin"]
print(f"http://admin:{u.quote(pw, safe=str())}@{u.urlsplit(sys.argv[2]).netloc}")' "$ADMIN_PASSWORD_FILE" "$AIRFLOW__API__BASE_URL")"
  export AIRFLOW_CONN_AIRFLOW_API
fi
