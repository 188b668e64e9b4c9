"""CALPADS submission deadlines: a daily readiness email before each certification deadline
(see the DAG's docs in the Airflow UI)."""

from calpads_airflow.factories.deadlines import build_deadline_dag

dag = build_deadline_dag()
