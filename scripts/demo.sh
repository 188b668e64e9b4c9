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
private_log "$DEMO_DIR/sis-migrate.log"
"$VENV/bin/calpads-sis-migrate" --url "sqlite:///$DEMO_DIR/demo_sis.db" --apply >"$DEMO_DIR/sis-migrate.log"
# A local mailbox receives the alert emails, so the demo shows them too.
"$VENV/bin/python" -m calpads.demo.mailbox --port 8025 --dir "$DEMO_DIR/mail" &
MAILBOX_PID=$!
trap 'kill $MAILBOX_PID 2>/dev/null || true' EXIT
sleep 1
status=0
# 1. The afterschool side first: import + gate + stage the platform's export (LEAP and STAS 13.24 read the
#    staged rows), then the validated write-back into the demo SIS. The write-back is on through the district's
#    setting (the Variable afterschool_write_mode), as it would be for scheduled runs.
export AIRFLOW_VAR_AFTERSCHOOL_WRITE_MODE="${AIRFLOW_VAR_AFTERSCHOOL_WRITE_MODE:-write}"
echo "== airflow dags test afterschool_sync (academic year $YEAR, write-back: $AIRFLOW_VAR_AFTERSCHOOL_WRITE_MODE)"
private_log "$DEMO_DIR/afterschool_sync.log"
if "$VENV/bin/airflow" dags test afterschool_sync -c "{\"academic_year\": \"$YEAR\"}" >"$DEMO_DIR/afterschool_sync.log" 2>&1; then
  echo "   afterschool_sync succeeded (log: $DEMO_DIR/afterschool_sync.log)"
else
  status=1; echo "   afterschool_sync FAILED: see $DEMO_DIR/afterschool_sync.log"; tail -20 "$DEMO_DIR/afterschool_sync.log"
fi
# 2. Every CALPADS file DAG.
for dag in $(cd "$PROJECT_ROOT/dags" && ls calpads_*.py | grep -v '^calpads_deadline_watch' | sed 's/\.py$//'); do
  echo "== airflow dags test $dag (academic year $YEAR, report mode submission)"
  private_log "$DEMO_DIR/$dag.log"
  if ! "$VENV/bin/airflow" dags test "$dag" -c "{\"academic_year\": \"$YEAR\"}" >"$DEMO_DIR/$dag.log" 2>&1; then
    status=1; echo "   $dag FAILED: see $DEMO_DIR/$dag.log"; tail -20 "$DEMO_DIR/$dag.log"
  fi
  "$VENV/bin/python" -m calpads.demo.where --dag-id "$dag" --log "$DEMO_DIR/$dag.log" || status=1
done
# 3. The integration health checklist (a test LEAP extract against the SIS, the spot-check, permissions). The
#    demo export carries planted faults, so failing checks that the health email explains are the expected result.
echo "== airflow dags test integration_health"
private_log "$DEMO_DIR/integration_health.log"
if "$VENV/bin/airflow" dags test integration_health -c "{\"academic_year\": \"$YEAR\"}" >"$DEMO_DIR/integration_health.log" 2>&1; then
  echo "   integration_health: all checks pass (log: $DEMO_DIR/integration_health.log)"
elif grep -q "Integration checks failing:" "$DEMO_DIR/integration_health.log"; then
  echo "   integration_health found problems (the planted ones), as the health email explains:"
  grep -o "Integration checks failing: [^(]*" "$DEMO_DIR/integration_health.log" | tail -1 | sed 's/^/   /'
else
  status=1; echo "   integration_health FAILED: see $DEMO_DIR/integration_health.log"; tail -20 "$DEMO_DIR/integration_health.log"
fi
pub="${AIRFLOW_VAR_CALPADS_PUBLISH_ROOT#file://}"
echo "== afterschool reports: $pub/$YEAR/AFTERSCHOOL/<run id>/; the integration's data-flow page: $pub/integration/data_flows.html"
echo "== summer (July) expanded-learning days written to the demo SIS: $("$VENV/bin/python" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM U_AFTERSCHOOL_PARTICIPATION WHERE substr(PARTICIPATION_DATE, 6, 2) = '07' AND PROGRAM <> 'AR'\").fetchone()[0])" "$DEMO_DIR/demo_sis.db")"
echo "== alert emails received by the local mailbox: $DEMO_DIR/mail/"
ls -1 "$DEMO_DIR/mail" 2>/dev/null | sed 's/^/   /' || true
exit $status
