"""Airflow glue for the calpads package: connections, notifiers."""
