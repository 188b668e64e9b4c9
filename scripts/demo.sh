#!/usr/bin/env bash
# The main job: set up, generate the demo district, run every CALPADS DAG through
# Airflow (`airflow dags test`), and say where the files and reports are.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$PROJECT_ROOT/scripts/setup.sh"
STUDENTS="${DEMO_STUDENTS:-2000}"
YEAR="${DEMO_YEAR:-2025-2026}"
echo "== generating the demo district ($STUDENTS students, $YEAR, with planted rule violations) into $DEMO_DIR/demo_sis.db"
"$VENV/bin/calpads-demo-district" --url "sqlite:///$DEMO_DIR/demo_sis.db" --students "$STUDENTS" --dirty 0.01 \
  --academic-year "$YEAR" --replace --afterschool-dir "$DEMO_DIR/afterschool"
echo "== adding the afterschool participation table to the demo SIS (the migration a district's IT runs once)"
"$VENV/bin/calpads-sis-migrate" --url "sqlite:///$DEMO_DIR/demo_sis.db" --apply >"$DEMO_DIR/sis-migrate.log"
# A local mailbox receives the alert emails, so the demo shows them too.
"$VENV/bin/python" -m calpads.demo.mailbox --port 8025 --dir "$DEMO_DIR/mail" &
MAILBOX_PID=$!
trap 'kill $MAILBOX_PID 2>/dev/null || true' EXIT
sleep 1
status=0
for dag in $(cd "$PROJECT_ROOT/dags" && ls calpads_*.py | grep -v '^calpads_deadline_watch' | sed 's/\.py$//'); do
  echo "== airflow dags test $dag (academic year $YEAR, report mode submission)"
  if ! "$VENV/bin/airflow" dags test "$dag" -c "{\"academic_year\": \"$YEAR\"}" >"$DEMO_DIR/$dag.log" 2>&1; then
    status=1; echo "   $dag FAILED: see $DEMO_DIR/$dag.log"; tail -20 "$DEMO_DIR/$dag.log"
  fi
  "$VENV/bin/python" -m calpads.demo.where --dag-id "$dag" --log "$DEMO_DIR/$dag.log" || status=1
done
# The afterschool side: import + gate + reconciliation + validated write-back into the demo SIS,
# then the integration health checklist.
for spec in 'afterschool_sync:{"academic_year": "'"$YEAR"'", "write_mode": "write"}' \
            'integration_health:{"academic_year": "'"$YEAR"'"}'; do
  dag="${spec%%:*}"; conf="${spec#*:}"
  echo "== airflow dags test $dag"
  if "$VENV/bin/airflow" dags test "$dag" -c "$conf" >"$DEMO_DIR/$dag.log" 2>&1; then
    echo "   $dag succeeded (log: $DEMO_DIR/$dag.log)"
  else
    status=1; echo "   $dag FAILED: see $DEMO_DIR/$dag.log"; tail -20 "$DEMO_DIR/$dag.log"
  fi
done
pub="${AIRFLOW_VAR_CALPADS_PUBLISH_ROOT#file://}"
echo "== afterschool reports: $pub/$YEAR/AFTERSCHOOL/<run id>/; the integration's data-flow page: $pub/integration/data_flows.html"
echo "== alert emails received by the local mailbox: $DEMO_DIR/mail/"
ls -1 "$DEMO_DIR/mail" 2>/dev/null | sed 's/^/   /' || true
exit $status
