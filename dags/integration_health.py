"""Integration health (the guide's "Verifying your integration"): see the DAG's docs in the Airflow UI."""

from calpads_airflow.factories.health import build_health_dag
from calpads_airflow.factories.lea_dags import single_lea_only

dag = single_lea_only(build_health_dag)   # None when an LEA file lists the LEAs
