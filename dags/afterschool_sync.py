"""Afterschool platform attendance into the SIS and CALPADS: see the DAG's docs in the Airflow UI."""

from calpads_airflow.factories.afterschool import build_afterschool_dag
from calpads_airflow.factories.lea_dags import single_lea_only

dag = single_lea_only(build_afterschool_dag)   # None when an LEA file lists the LEAs
