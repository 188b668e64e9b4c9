"""CALPADS Student Program (SPRG) file: see the DAG's docs in the Airflow UI."""

from calpads_airflow.factories.file_dag import build_calpads_dag

dag = build_calpads_dag("SPRG")
