"""Afterschool platform attendance into the SIS and CALPADS: see the DAG's docs in the Airflow UI."""

from calpads_airflow.factories.afterschool import build_afterschool_dag

dag = build_afterschool_dag()
