"""sis_nightly_pull: check that the SIS can be read, record row counts, and publish the SIS Airflow Assets
the CALPADS file DAGs consume (calpads.assets). The afterschool asset is afterschool_sync's: it is updated
when that DAG has imported and staged the platform's export.

Each asset has its own task, so a broken attendance table does not hold back the enrollment asset;
an asset event carries its table row counts (shown in the UI's asset view), never student data.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum

from calpads.assets import SIS_TABLES, asset
from calpads.dag_factory import DEFAULT_TZ, _conf

log = logging.getLogger(__name__)
DEFAULT_SCHEDULE = "30 1 * * *"   # before the file DAGs' 02:00 default

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


def count_rows(engine: Any, tables: tuple[str, ...]) -> dict[str, int]:
    import sqlalchemy as sa

    counts = {}
    with engine.connect() as conn:
        for name in tables:
            counts[name] = int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar() or 0)
    return counts


def build_sis_pull_dag(dag_id: str = "sis_nightly_pull"):
    from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task
    from airflow.sdk.exceptions import AirflowFailException

    from calpads_airflow.notifiers import CalpadsFailureNotifier

    tz = pendulum.timezone(_conf("timezone", DEFAULT_TZ))
    cron = _conf("schedule_sis_pull", DEFAULT_SCHEDULE)

    def engine():
        from calpads_airflow.connections import engine_for

        return engine_for("sis_db")

    def record(kind: str, counts: dict[str, int]) -> dict[str, int]:
        try:   # the asset event's extra shows the counts in the UI
            get_current_context()["outlet_events"][asset(kind)].extra = {"row_counts": counts}
        except Exception:  # noqa: BLE001 - an older runtime without outlet_events: the counts stay in XCom
            pass
        log.info("%s row counts: %s", kind, counts)
        return counts

    @dag(
        dag_id=dag_id,
        dag_display_name="CALPADS – nightly SIS pull (assets)",
        description="Checks the SIS and the afterschool exports, records row counts, updates the SIS assets",
        schedule=CronTriggerTimetable(cron, timezone=tz),
        start_date=pendulum.datetime(2025, 7, 1, tz=tz),
        catchup=False,
        max_active_runs=1,
        tags=["calpads", "assets"],
        doc_md=DOC,
        default_args={
            "owner": "integration-team",
            "retries": int(_conf("task_retries", "2")),
            "retry_delay": timedelta(seconds=int(_conf("retry_delay_seconds", "120"))),
            "on_failure_callback": [CalpadsFailureNotifier()],
        },
    )
    def sis_nightly_pull():
        @task(task_display_name="Check the SIS is reachable")
        def check_sis() -> dict[str, Any]:
            from calpads.sources.sql_sis import reporting_lea

            with engine().connect() as conn:
                lea = reporting_lea(conn)
            return {"reporting_lea": lea}

        def sis_task(kind: str):
            @task(task_id=f"count_{kind}", task_display_name=f"Count {kind} rows", outlets=[asset(kind)])
            def count(_: dict[str, Any]) -> dict[str, int]:
                counts = count_rows(engine(), SIS_TABLES[kind])
                empty = [t for t in ("students", "schools", "calendar_day", "attendance_code") if counts.get(t) == 0]
                if empty:
                    raise AirflowFailException(f"SIS tables are empty: {', '.join(empty)}; assets not updated")
                return record(kind, counts)
            return count

        reachable = check_sis()
        for kind in SIS_TABLES:
            sis_task(kind)(reachable)

    return sis_nightly_pull()
