"""The Airflow Assets of the SIS pull and the afterschool import, and the file DAGs' schedule on them.

What each asset covers (tables, URIs, a layout's inputs) is domain data in calpads.assets; this module
only makes the Airflow objects. ``<lea>`` is the Airflow config AIRFLOW__CALPADS__LEA_CODE (default
``district``): parse time never reads the SIS, and one deployment per LEA gets its own URIs. An LEA of the LEA file
(calpads.leas) has its code as ``<lea>``: its own pull and afterschool sync trigger only its own file DAGs.
"""

from __future__ import annotations

from typing import Any

from calpads.assets import asset_uri, inputs_for


def lea_key() -> str:
    from airflow.configuration import conf

    return conf.get("calpads", "lea_code", fallback="district")


def asset(kind: str, lea: str | None = None) -> Any:
    from airflow.sdk import Asset

    lea = lea or lea_key()
    return Asset(uri=asset_uri(kind, lea), name=f"calpads_{kind}_{lea}", group="calpads_sis")


def file_schedule(record_type: str, timetable: Any, lea: str | None = None) -> Any:
    """The file DAG's schedule: its own timetable OR a refresh of all the assets it reads (``lea``: a listed LEA's
    code, whose own sis_nightly_pull__<code> and afterschool_sync__<code> update its assets; None: lea_key())."""
    from airflow.sdk import AssetOrTimeSchedule

    return AssetOrTimeSchedule(timetable=timetable, assets=[asset(k, lea=lea) for k in inputs_for(record_type)])
