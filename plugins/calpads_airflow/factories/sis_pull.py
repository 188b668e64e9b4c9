"""sis_nightly_pull: check that the SIS can be read, record row counts, and publish the SIS Airflow Assets
the CALPADS file DAGs consume (calpads.assets, calpads_airflow.assets). The afterschool asset is
afterschool_sync's: it is updated when that DAG has imported and staged the platform's export.

Each asset has its own task, so a broken attendance table does not hold back the enrollment asset;
an asset event carries its table row counts (shown in the UI's asset view), never student data.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from calpads.assets import SIS_TABLES, count_rows
from calpads.leas import LeaConfig
from calpads_airflow import runtime
from calpads_airflow.assets import asset
from calpads_airflow.factories.lea_doc import common_names, lea_doc
from calpads_airflow.tags import DagTag

log = logging.getLogger(__name__)
DEFAULT_SCHEDULE = "30 1 * * *"   # before the file DAGs' 02:00 default
REQUIRED_TABLES = ("students", "schools", "calendar_day", "attendance_code")   # empty: the pull did not complete

DOC = """
### Nightly SIS pull (assets for the CALPADS file DAGs)

**What it does.** Connects to the SIS (`sis_db` connection), checks that it answers and has a district
number and counts the rows of the contract tables. Each successful check updates an Airflow Asset
(`calpads://sis/<lea>/enrollment`, `.../programs`, `.../attendance`); every CALPADS file DAG that reads
those assets then runs its extract and quality gate (see the Assets view for the lineage). LEAP and STAS
also wait for `calpads://afterschool/<lea>/exports`, which `afterschool_sync` updates once it has imported
and checked the afterschool platform's export. The file DAGs keep their own nightly schedule as well.

**When you get an alert.** *SIS not reachable*: ask district IT to check the database and login.
*A table is empty*: the SIS export or replication did not complete; the file DAGs were not triggered.
"""


def _lea_doc(lea: LeaConfig) -> str:
    names = {k: v for k, v in common_names(lea).items() if k == "sis_db"}
    names["calpads://sis/<lea>/..."] = f"`calpads://sis/{lea.code}/...`: the assets only this LEA's file DAGs wait for"
    return lea_doc(lea, sis_conn=lea.sis_conn_id, names=names,
                   does="checks that it holds this LEA's data (its district number) and updates only this LEA's "
                        "assets, so only this LEA's file DAGs run after it; failures go to this LEA's own team")


def record(kind: str, counts: dict[str, int], lea: LeaConfig | None = None) -> dict[str, int]:
    try:   # the asset event's extra shows the counts in the UI
        get_current_context()["outlet_events"][asset(kind, lea=_asset_lea(lea))].extra = {"row_counts": counts}
    except Exception:  # noqa: BLE001 - an older runtime without outlet_events: the counts stay in XCom
        pass
    log.info("%s row counts: %s", kind, counts)
    return counts


def _asset_lea(lea: LeaConfig | None) -> str | None:
    """The <lea> of the assets: a listed LEA's code; None (AIRFLOW__CALPADS__LEA_CODE) for the single LEA."""
    return lea.code if lea is not None and lea.listed else None


def check_sis(lea: LeaConfig | None = None) -> dict[str, Any]:
    """The SIS answers and names its district; a listed LEA's SIS must name that LEA (LeaMismatch otherwise: no
    asset of this LEA is updated from another LEA's SIS)."""
    from calpads.failures import LeaMismatch, check_lea
    from calpads.sources.sql_sis import reporting_lea

    with runtime.engine(runtime.sis_db_conn_id(lea)).connect() as conn:
        found = reporting_lea(conn)
    try:
        check_lea(_asset_lea(lea), found)
    except LeaMismatch as exc:   # a retry cannot fix the configuration
        raise AirflowFailException(str(exc)) from None
    return {"reporting_lea": found}


def count_kind(kind: str, _: dict[str, Any], lea: LeaConfig | None = None) -> dict[str, int]:
    counts = count_rows(runtime.engine(runtime.sis_db_conn_id(lea)), SIS_TABLES[kind])
    empty = [t for t in REQUIRED_TABLES if counts.get(t) == 0]
    if empty:
        raise AirflowFailException(f"SIS tables are empty: {', '.join(empty)}; assets not updated")
    return record(kind, counts, lea)


def count_task(kind: str, lea: LeaConfig | None = None) -> Any:
    """The task that counts one asset's tables and, when none is empty, updates the asset (a listed LEA's own)."""
    def count(_: dict[str, Any]) -> dict[str, int]:
        return count_kind(kind, _, lea)

    return task(count, task_id=f"count_{kind}", task_display_name=f"Count {kind} rows",
                outlets=[asset(kind, lea=_asset_lea(lea))])


def has_sis_pull(lea: LeaConfig) -> bool:
    """The nightly pull reads the SIS by SQL: a listed LEA on a vendor API has none (its file DAGs keep their
    cron). The single LEA always has it, as before."""
    return not lea.listed or lea.sis_source == "sql"


def build_sis_pull_dag(dag_id: str = "sis_nightly_pull", lea: LeaConfig | None = None):
    """``sis_nightly_pull`` of the single LEA (lea None), or ``sis_nightly_pull__<code>`` of a listed LEA (SQL SIS):
    its own SIS connection, assets ``calpads://sis/<code>/...``, time zone, schedule and team."""
    listed = lea if lea is not None and lea.listed else None
    tz = runtime.lea_timezone(listed)

    def check() -> dict[str, Any]:
        return check_sis(listed)

    @dag(**runtime.nightly_dag(
        dag_id, display_name="CALPADS – nightly SIS pull (assets)",
        description="Checks the SIS and the afterschool exports, records row counts, updates the SIS assets",
        cron_key="sis_pull", default_cron=DEFAULT_SCHEDULE, tag=DagTag.ASSETS,
        doc_md=(_lea_doc(listed) + DOC) if listed else DOC, tz=tz, lea=listed,
    ))
    def sis_nightly_pull():
        reachable = task(check, task_id="check_sis", task_display_name="Check the SIS is reachable")()
        for kind in SIS_TABLES:
            count_task(kind, listed)(reachable)

    return sis_nightly_pull()
