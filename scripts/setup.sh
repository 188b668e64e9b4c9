#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: venv, pinned install, Airflow metadata DB (SQLite).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat "$PROJECT_ROOT/requirements.txt" "$PROJECT_ROOT/constraints.txt" "$PROJECT_ROOT/pyproject.toml" 2>/dev/null | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "== installing pinned requirements (a few minutes the first time)"
  "$VENV/bin/pip" install -q --upgrade pip
  cons=(); [ -f "$PROJECT_ROOT/constraints.txt" ] && cons=(-c "$PROJECT_ROOT/constraints.txt")
  "$VENV/bin/pip" install -q -r "$PROJECT_ROOT/requirements.txt" "${cons[@]}"
  "$VENV/bin/pip" install -q --no-deps -e "$PROJECT_ROOT"
  rm -f "$VENV"/.installed-*; touch "$stamp"
fi
mkdir -p "$AIRFLOW_HOME" "$DEMO_DIR"
# Both hold student data (the metadata DB's XComs and Variables, the stores, work folders, the demo SIS): owner-only.
chmod 700 "$AIRFLOW_HOME" "$DEMO_DIR"
# Airflow makes a task log's last folder 0700 (env.sh) but the levels above it with the umask: the root is 0700.
mkdir -p "$AIRFLOW_HOME/logs" && chmod 700 "$AIRFLOW_HOME/logs"
# The UI browser test drives Debian's chromium (Playwright cannot download its own browser here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium (apt) for the UI browser test"
    private_log "$AIRFLOW_HOME/apt-chromium.log"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >"$AIRFLOW_HOME/apt-chromium.log" 2>&1 \
      || { tail -20 "$AIRFLOW_HOME/apt-chromium.log"; exit 1; }
  else
    echo "== chromium missing and not root with apt: install it (apt-get install chromium) for the UI test"
  fi
fi
# The test command (scripts/test.sh) skips this: every test worker migrates an Airflow home of its own.
if [[ "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" == sqlite* && "${CALPADS_SETUP_FOR_TESTS:-0}" != 1 ]]; then
  echo "== migrating the Airflow metadata database ($AIRFLOW_HOME/airflow.db)"
  private_log "$AIRFLOW_HOME/db-migrate.log"
  "$VENV/bin/airflow" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -30 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
  # One pool per SIS API keeps parallel tasks under the vendor's rate limit (the vendors' hooks name them).
  "$VENV/bin/python" -m calpads_airflow.registry pools | while IFS=$'\t' read -r pool slots description; do
    "$VENV/bin/airflow" pools set "$pool" "$slots" "$description" >>"$AIRFLOW_HOME/db-migrate.log" 2>&1 || true
  done
  # SQLite gave the new database the umask's mode (0644); its -wal/-shm files follow the database's mode.
  chmod 600 "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN#sqlite:///}"
fi
# The UI's admin password for `airflow standalone` (its simple auth manager reads this file and keeps the password):
# written once here, owner-only, so that it is known before the first start (scripts/env.sh reads it).
if [ ! -f "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" ]; then
  (umask 077 && "$VENV/bin/python" -c 'import json, secrets; print(json.dumps({"admin": secrets.token_urlsafe(12)}))' \
    >"$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated")
fi
# The local publish folder (the embedded calpads_publish_root): a run never creates its publish root,
# which in production is the mounted district share.
if [[ "${AIRFLOW_VAR_CALPADS_PUBLISH_ROOT:-}" == file://* ]]; then
  mkdir -p -m 0750 "${AIRFLOW_VAR_CALPADS_PUBLISH_ROOT#file://}"
fi
