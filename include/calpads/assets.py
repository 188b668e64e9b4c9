"""Airflow Assets: the nightly SIS pull (dags/sis_nightly_pull.py) produces them, the file DAGs consume them.

    calpads://sis/<lea>/enrollment     STUDENTS, REENROLLMENTS, SCHOOLS, CALENDAR_DAY, TERMS, S_CA_STU_X
    calpads://sis/<lea>/programs       S_CA_STU_CALPADSPROGRAMS_C, S_CA_CALPADS_STUDENTSERVICES_C
    calpads://sis/<lea>/attendance     ATTENDANCE, ATTENDANCE_CODE
    calpads://afterschool/<lea>/exports   the afterschool platform's CSV exports

A file DAG runs when every asset it reads was refreshed (its layout's ``inputs``), *or* on its own
cron (AssetOrTimeSchedule), so the UI shows the lineage SIS pull -> file DAGs and a fresh pull
triggers the quality gates downstream. ``<lea>`` is the Airflow config AIRFLOW__CALPADS__LEA_CODE
(default ``district``): parse time never reads the SIS, and one deployment per LEA gets its own URIs.
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


def lea_key() -> str:
    from airflow.configuration import conf

    return conf.get("calpads", "lea_code", fallback="district")


def asset_uri(kind: str, lea: str) -> str:
    if kind == AFTERSCHOOL:
        return f"calpads://afterschool/{lea}/exports"
    return f"calpads://sis/{lea}/{kind}"


def asset(kind: str, lea: str | None = None) -> Any:
    from airflow.sdk import Asset

    lea = lea or lea_key()
    return Asset(uri=asset_uri(kind, lea), name=f"calpads_{kind}_{lea}", group="calpads_sis")


def inputs_for(record_type: str) -> tuple[str, ...]:
    from calpads.layouts import load_layout

    declared = load_layout(record_type).raw.get("inputs")
    return tuple(declared) if declared else DEFAULT_INPUTS.get(record_type.upper(), ("enrollment",))


def file_schedule(record_type: str, timetable: Any) -> Any:
    """The file DAG's schedule: its own timetable OR a refresh of all the assets it reads."""
    from airflow.sdk import AssetOrTimeSchedule

    return AssetOrTimeSchedule(timetable=timetable, assets=[asset(k) for k in inputs_for(record_type)])
