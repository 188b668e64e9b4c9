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
from calpads_airflow import runtime
from calpads_airflow.assets import asset
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


def record(kind: str, counts: dict[str, int]) -> dict[str, int]:
    try:   # the asset event's extra shows the counts in the UI
        get_current_context()["outlet_events"][asset(kind)].extra = {"row_counts": counts}
    except Exception:  # noqa: BLE001 - an older runtime without outlet_events: the counts stay in XCom
        pass
    log.info("%s row counts: %s", kind, counts)
    return counts


def check_sis() -> dict[str, Any]:
    from calpads.sources.sql_sis import reporting_lea

    with runtime.engine("sis_db").connect() as conn:
        lea = reporting_lea(conn)
    return {"reporting_lea": lea}


def count_kind(kind: str, _: dict[str, Any]) -> dict[str, int]:
    counts = count_rows(runtime.engine("sis_db"), SIS_TABLES[kind])
    empty = [t for t in REQUIRED_TABLES if counts.get(t) == 0]
    if empty:
        raise AirflowFailException(f"SIS tables are empty: {', '.join(empty)}; assets not updated")
    return record(kind, counts)


def count_task(kind: str) -> Any:
    """The task that counts one asset's tables and, when none is empty, updates the asset."""
    def count(_: dict[str, Any]) -> dict[str, int]:
        return count_kind(kind, _)

    return task(count, task_id=f"count_{kind}", task_display_name=f"Count {kind} rows", outlets=[asset(kind)])


def build_sis_pull_dag(dag_id: str = "sis_nightly_pull"):
    tz = runtime.timezone()

    @dag(**runtime.nightly_dag(
        dag_id, display_name="CALPADS – nightly SIS pull (assets)",
        description="Checks the SIS and the afterschool exports, records row counts, updates the SIS assets",
        cron_key="sis_pull", default_cron=DEFAULT_SCHEDULE, tag=DagTag.ASSETS, doc_md=DOC, tz=tz,
    ))
    def sis_nightly_pull():
        reachable = task(check_sis, task_display_name="Check the SIS is reachable")()
        for kind in SIS_TABLES:
            count_task(kind)(reachable)

    return sis_nightly_pull()
