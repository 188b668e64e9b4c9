#!/usr/bin/env bash
# The test command: set up (idempotent), lint, then the whole pytest suite.
# PostgreSQL tests need 127.0.0.1:5432; with CI set they fail (not skip) when it is unreachable.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
CALPADS_SETUP_FOR_TESTS=1 "$PROJECT_ROOT/scripts/setup.sh"   # venv and packages; not the demo's Airflow database
cd "$PROJECT_ROOT"
echo "== ruff"
"$VENV/bin/ruff" check include plugins dags tests bench
echo "== pytest"
# Two workers: most of the time goes to real `airflow dags test` subprocesses, one core each.
# --dist loadfile keeps a module's fixtures (e.g. a generated district) in one worker.
# --durations: the slowest tests at the end of the output, to keep the suite's time in view.
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" --dist loadfile --durations=25 "$@"
