"""Nightly SIS pull (Airflow DAG): produces the SIS assets the CALPADS file DAGs consume (see its docs in the UI)."""

from calpads_airflow.factories.sis_pull import build_sis_pull_dag

dag = build_sis_pull_dag()
