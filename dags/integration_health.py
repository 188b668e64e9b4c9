"""Integration health (the guide's "Verifying your integration"): see the DAG's docs in the Airflow UI."""

from calpads_airflow.factories.health import build_health_dag

dag = build_health_dag()
