"""CALPADS file DAGs of the LEAs listed in the LEA file (docs/leas.md): those of shard 14 of 16."""

from calpads_airflow.factories.lea_dags import build_lea_dags

globals().update(build_lea_dags(shard=14))
