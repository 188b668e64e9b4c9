"""Airflow glue for the calpads package: the SIS vendor hooks and their registry, connections, notifiers."""

# Airflow first: initialising it discovers providers, which imports this package's provider entry point
# (calpads_airflow.hooks:get_provider_info); a hook module imported before Airflow would meet itself
# half-initialised there (e.g. `python -m calpads_airflow.registry pools` as the first import).
import airflow  # noqa: F401
