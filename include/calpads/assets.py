"""What the Airflow Assets cover (the Asset objects: calpads_airflow.assets): the nightly SIS pull
(dags/sis_nightly_pull.py) produces them, the file DAGs consume them.

    calpads://sis/<lea>/enrollment     STUDENTS, REENROLLMENTS, SCHOOLS, CALENDAR_DAY, TERMS, S_CA_STU_X
    calpads://sis/<lea>/programs       S_CA_STU_CALPADSPROGRAMS_C, S_CA_CALPADS_STUDENTSERVICES_C
    calpads://sis/<lea>/attendance     ATTENDANCE, ATTENDANCE_CODE
    calpads://afterschool/<lea>/exports   the afterschool platform's CSV exports

A file DAG runs when every asset it reads was refreshed (its layout's ``inputs``), *or* on its own
cron (AssetOrTimeSchedule: calpads_airflow.assets.file_schedule), so the UI shows the lineage SIS pull ->
file DAGs and a fresh pull triggers the quality gates downstream. ``<lea>`` is the Airflow config
AIRFLOW__CALPADS__LEA_CODE (default ``district``): parse time never reads the SIS, and one deployment per LEA
gets its own URIs.
"""

from __future__ import annotations

from typing import Any

SIS_TABLES: dict[str, tuple[str, ...]] = {
    "enrollment": ("students", "reenrollments", "schools", "calendar_day", "terms", "s_ca_stu_x"),
    "programs": ("s_ca_stu_calpadsprograms_c", "s_ca_calpads_studentservices_c"),
    "attendance": ("attendance", "attendance_code"),
}
AFTERSCHOOL = "afterschool"
KINDS = (*SIS_TABLES, AFTERSCHOOL)
DEFAULT_INPUTS: dict[str, tuple[str, ...]] = {"SPRG": ("enrollment", "programs")}


def asset_uri(kind: str, lea: str) -> str:
    if kind == AFTERSCHOOL:
        return f"calpads://afterschool/{lea}/exports"
    return f"calpads://sis/{lea}/{kind}"


def inputs_for(record_type: str) -> tuple[str, ...]:
    from calpads.layouts import load_layout

    declared = load_layout(record_type).raw.get("inputs")
    return tuple(declared) if declared else DEFAULT_INPUTS.get(record_type.upper(), ("enrollment",))


def count_rows(engine: Any, tables: tuple[str, ...]) -> dict[str, int]:
    """The row count of each table (what the SIS pull records on an asset's event: counts, never student data)."""
    import sqlalchemy as sa

    counts = {}
    with engine.connect() as conn:
        for name in tables:
            counts[name] = int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar() or 0)
    return counts
