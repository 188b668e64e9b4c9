"""CALPADS Student Program (SPRG) file: see the DAG's docs in the Airflow UI."""

from calpads_airflow.factories.lea_dags import single_lea_file_dag

dag = single_lea_file_dag("SPRG")   # None when an LEA file lists the LEAs: dags/calpads_leas_*.py
