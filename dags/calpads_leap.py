"""CALPADS LEAP file: see the DAG's docs in the Airflow UI."""

from calpads.dag_factory import build_calpads_dag

dag = build_calpads_dag("LEAP")
