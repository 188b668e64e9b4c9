# The official Airflow image plus the project's pinned dependencies and the calpads package
# (docker-compose.yaml builds it; see docs/production.md). The code itself (dags/, plugins/,
# include/, great_expectations/) is mounted by docker-compose.yaml over the copy made here,
# so a code update needs no rebuild; a change of requirements.txt does.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# Drivers for the district's SIS database (e.g. "oracledb==3.4.0" or "pyodbc==5.3.0").
ARG EXTRA_PIP_PACKAGES=""

USER root
# Mount points of the shared volumes, writable by any AIRFLOW_UID in group 0 (the image's convention).
RUN mkdir -p /opt/calpads/published /opt/calpads/work /opt/airflow/auth /opt/airflow/project \
 && chown -R airflow:0 /opt/calpads /opt/airflow/auth /opt/airflow/project \
 && chmod -R g+rwX /opt/calpads /opt/airflow/auth /opt/airflow/project
USER airflow

COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml /opt/airflow/project/
COPY --chown=airflow:0 include /opt/airflow/project/include
# plugins/ is installed too: its provider entry point lists the SIS API connection types in the UI.
COPY --chown=airflow:0 plugins /opt/airflow/project/plugins
COPY --chown=airflow:0 scripts/airflow-init.sh /opt/airflow/project/scripts/airflow-init.sh
# Runtime requirements only: everything above the "# tests and tooling" line of requirements.txt.
RUN sed '/^# tests and tooling/,$d' /opt/airflow/project/requirements.txt > /tmp/runtime-requirements.txt \
 && pip install --no-cache-dir -c /opt/airflow/project/constraints.txt -r /tmp/runtime-requirements.txt \
    ${EXTRA_PIP_PACKAGES} \
 && pip install --no-cache-dir --no-deps -e /opt/airflow/project

ENV CALPADS_GX_ROOT=/opt/airflow/project/great_expectations \
    GX_ANALYTICS_ENABLED=false
