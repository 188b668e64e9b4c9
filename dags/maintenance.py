"""CALPADS maintenance: run work folders deleted after the retention period, interrupted publications
cleaned up (see the DAG's docs in the Airflow UI)."""

from calpads_airflow.factories.maintenance import build_maintenance_dag

dag = build_maintenance_dag()
