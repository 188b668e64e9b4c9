"""Nightly SIS pull (Airflow DAG): produces the SIS assets the CALPADS file DAGs consume (see its docs in the UI)."""

from calpads_airflow.factories.lea_dags import single_lea_only
from calpads_airflow.factories.sis_pull import build_sis_pull_dag

dag = single_lea_only(build_sis_pull_dag)   # None when an LEA file lists the LEAs
