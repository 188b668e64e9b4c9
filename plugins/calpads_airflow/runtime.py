"""Run-time plumbing of every CALPADS DAG, in one place: the [calpads] configuration, the work folder,
the publish root, engines from connections, the SIS reader and write-back target, the default_args and
the failure notifier. Parse-time helpers (conf, timezone, default_args) read only Airflow's
configuration; the rest is called inside tasks only (Variables and connections are never read while
a DAG file is parsed).

Airflow configuration ([calpads] section, e.g. AIRFLOW__CALPADS__...):
  TIMEZONE                    default "America/Los_Angeles"
  TASK_RETRIES                retries of a failed task, default 2
  RETRY_DELAY_SECONDS         first retry delay of the file DAGs and the SIS pull, default 120
  SIS_SOURCE                  sql (default) | powerschool_api | aeries_api | oneroster: where the SIS is read
  SIS_CONN_ID                 API connection (default sis_powerschool / sis_aeries / sis_oneroster)
  AFTERSCHOOL_WRITEBACK       sql | powerschool_api (default: as SIS_SOURCE)
  AFTERSCHOOL_WRITE_MODE      dry_run (default) | write: what scheduled afterschool_sync runs do
  LEAS_FILE                   the LEA file of a deployment that submits for several LEAs (docs/leas.md); each
                              listed LEA's DAGs read its own entry instead of the connections/Variables below
                              (its SIS and store connections, publish root, recipients, afterschool export and
                              write mode: the functions below that take an ``lea``)
Variables: calpads_publish_root, calpads_work_root, afterschool_drop_path (default
$AIRFLOW_HOME/afterschool_drop), afterschool_write_mode (overrides the config above), integration_team_emails
and the per-role lists it_emails, calpads_coordinator_emails, afterschool_staff_emails (each defaults to
integration_team_emails).
Connections: sis_db, calpads_store, afterschool_api, sis_powerschool (or the configured API), smtp_default.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pendulum

from calpads.leas import LeaConfig

DEFAULT_TZ = "America/Los_Angeles"
OWNER = "integration-team"
OWNER_LINKS = {OWNER: "mailto:integration-team@district.example"}
START_DATE = (2025, 7, 1)
WRITE_MODES = ("dry_run", "write")


# --------------------------------------------------------------------------- parse time: configuration only
def conf(key: str, fallback: str) -> str:
    from airflow.configuration import conf as airflow_conf

    return airflow_conf.get("calpads", key, fallback=fallback)


def timezone() -> Any:
    return pendulum.timezone(conf("timezone", DEFAULT_TZ))


def start_date(tz: Any) -> Any:
    return pendulum.datetime(*START_DATE, tz=tz)


def cron(dag_key: str, default: str, tz: Any) -> Any:
    """The DAG's cron ([calpads] schedule_<dag_key>) in the district's time zone."""
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(conf(f"schedule_{dag_key}", default), timezone=tz)


def default_args(*, exponential_backoff: bool = False, lea: LeaConfig | None = None) -> dict[str, Any]:
    """Every task: owned by the integration team, retried after [calpads] retry_delay_seconds (default 120), and
    alerting on failure (CalpadsFailureNotifier; a listed LEA's own team). A listed LEA with a ``queue`` runs its
    tasks on that Celery queue."""
    from calpads_airflow.notifiers import CalpadsFailureNotifier

    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": int(conf("task_retries", "2")),
        "retry_delay": configured_retry_delay(),
        # A task later in its run goes first: with many LEAs' runs at once, each LEA's files are ready in turn
        # instead of all at the end (docs/performance.md, "Many LEAs"; needs [core] parallelism = worker slots).
        "weight_rule": "upstream",
    }
    if exponential_backoff:
        args["retry_exponential_backoff"] = True
    args["on_failure_callback"] = [CalpadsFailureNotifier(lea_code=lea.code if lea else None)]
    if lea is not None and lea.queue:
        args["queue"] = lea.queue
    return args


def nightly_dag(dag_id: str, *, display_name: str, description: str, cron_key: str, default_cron: str, tag: Any,
                doc_md: str, tz: Any, lea: LeaConfig | None = None, **extra: Any) -> dict[str, Any]:
    """The arguments of ``@dag`` shared by the project's nightly DAGs: the schedule from ``[calpads] schedule_<key>``
    in the district's time zone, no catch-up, one run at a time, tags from calpads_airflow.tags, the default_args
    above. ``extra``: params and anything else a DAG adds.

    A listed LEA's (``lea``): ``<dag_id>__<code>``, its name and code in the display name and description, its own
    cron (the LEA file's ``schedule: {<cron_key>: ...}``, else ``[calpads] schedule_<key>``) in its own time zone
    (``tz``), its LEA tag, its own team alerted and its Celery queue."""
    from calpads_airflow.tags import dag_tags, lea_tags

    if lea is None or not lea.listed:
        return {"dag_id": dag_id, "dag_display_name": display_name, "description": description,
                "schedule": cron(cron_key, default_cron, tz), "start_date": start_date(tz), "catchup": False,
                "max_active_runs": 1, "tags": dag_tags(tag), "doc_md": doc_md, "default_args": default_args(),
                **extra}
    from airflow.sdk import CronTriggerTimetable

    for_lea = f" · {lea.name} ({lea.code})"
    expression = lea.cron(cron_key) or conf(f"schedule_{cron_key}", default_cron)
    return {"dag_id": lea.dag_id(dag_id), "dag_display_name": f"{display_name}{for_lea}",
            "description": f"{description}{for_lea}", "schedule": CronTriggerTimetable(expression, timezone=tz),
            "start_date": start_date(tz), "catchup": False, "max_active_runs": 1,
            "tags": dag_tags(tag, *lea_tags(lea)), "doc_md": doc_md, "default_args": default_args(lea=lea), **extra}


def lea_timezone(lea: LeaConfig | None) -> Any:
    """A listed LEA's own time zone, else [calpads] timezone."""
    return pendulum.timezone(lea.timezone) if lea is not None and lea.timezone else timezone()


def configured_retry_delay() -> timedelta:
    return timedelta(seconds=int(conf("retry_delay_seconds", "120")))


# --------------------------------------------------------------------------- inside a task
def airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME", str(Path.home() / "airflow"))


def current_run_id() -> str:
    from airflow.sdk import get_current_context

    return get_current_context()["dag_run"].run_id


def run_date(tz: Any) -> date:
    """The run's logical date (a manual run: its run_after) as a date in the district's time zone."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    logical = ctx.get("logical_date") or ctx["dag_run"].run_after
    return pendulum.instance(logical).in_timezone(tz).date()


def work_root() -> str:
    from airflow.sdk import Variable

    return Variable.get("calpads_work_root", default=f"{airflow_home()}/calpads_work")


def work_path(dag_id: str, run_id: str) -> Path:
    """<calpads_work_root>/<dag id>/<run id>/ (run id made file-name safe); not created. A listed LEA's DAG ids
    hold its code (calpads_sprg__1964733), so its work folders are its own."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    return Path(work_root()) / dag_id / safe


def work_dir(dag_id: str, run_id: str) -> Path:
    """work_path, created owner-only at every level it creates (mkdir's mode only reaches the last one)."""
    from calpads.maintenance import private_dirs

    path = work_path(dag_id, run_id)
    private_dirs(path)
    return path


def publish_root(lea: LeaConfig | None = None) -> Any:
    """Where files are published: the calpads_publish_root Variable; for a listed LEA its own ``publish_root``,
    else ``<calpads_publish_root>/<LEA code>``, created (owner/group-only) when the Variable's folder exists: a
    share that is not mounted is still never created (calpads.publish.target.check_root)."""
    from airflow.sdk import Variable

    base = Variable.get("calpads_publish_root", default=f"file://{airflow_home()}/calpads_out")
    if lea is None or not lea.listed or lea.publish_root:
        return _storage_path(lea.publish_location(base) if lea is not None else base)
    from calpads.publish import target

    root, folder = _storage_path(base), _storage_path(lea.publish_location(base))
    if target.is_local(root) and root.is_dir() and not folder.exists():
        target.ensure_folder(folder)
    return folder


def _storage_path(root: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root if "://" in root else f"file://{os.path.abspath(root)}")


def engine(conn_id: str) -> Any:
    from calpads_airflow.connections import engine_for

    return engine_for(conn_id)


def _listed(lea: LeaConfig | None) -> bool:
    return lea is not None and lea.listed


def sis_source(lea: LeaConfig | None = None) -> str:
    """[calpads] sis_source; a listed LEA's: its entry's ``sis.source``."""
    return lea.sis_source if _listed(lea) else conf("sis_source", "sql")


def sis_db_conn_id(lea: LeaConfig | None = None) -> str:
    """The SQL SIS connection: sis_db; a listed LEA's: its entry's ``sis.conn_id``."""
    return lea.sis_conn_id if _listed(lea) else "sis_db"


def store_conn_id(lea: LeaConfig | None = None) -> str:
    """The history store: calpads_store; a listed LEA's: its entry's ``store_conn_id`` (rows scoped by LEA)."""
    return lea.store_conn_id if _listed(lea) else "calpads_store"


def writeback_kind(lea: LeaConfig | None = None) -> str:
    """Where afterschool participation is written: [calpads] afterschool_writeback (default as the SIS source); a
    listed LEA: its own SIS (the PowerSchool API for a PowerSchool LEA, else SQL)."""
    if _listed(lea):
        return "powerschool_api" if lea.sis_source == "powerschool_api" else "sql"
    src = sis_source()
    return conf("afterschool_writeback", "powerschool_api" if src == "powerschool_api" else "sql")


def api_conn_id(source: str | None = None, lea: LeaConfig | None = None) -> str:
    """The SIS API connection: [calpads] sis_conn_id, else the source's default (sis_powerschool, sis_aeries, ...);
    a listed LEA's: its entry's ``sis.conn_id``."""
    from calpads.sources.api_sources import sis_api_name

    if _listed(lea):
        return lea.sis_conn_id
    src = source or sis_source()
    return conf("sis_conn_id", sis_api_name(src if src != "sql" else "powerschool_api"))


def sis_pool(lea: LeaConfig | str) -> str:
    """The pool of the tasks that read the SIS. The single LEA: one per vendor API (named as its default
    connection) to stay under the vendor's rate limit, SQL reads in the default pool. A listed LEA: one per SIS
    connection (LeaConfig.pool), so one slow SIS cannot take the slots of the others."""
    from calpads.sources.api_sources import sis_api_name

    if isinstance(lea, LeaConfig):
        if lea.listed:
            return lea.pool
        lea = lea.sis_source
    return "default_pool" if lea == "sql" else sis_api_name(lea)


def powerschool_client(lea: LeaConfig | None = None) -> Any:
    """The PowerSchool API client of the configured SIS connection (a listed LEA: its own ``sis.conn_id``)."""
    from calpads.sources.api_sources import client_for, get_connection

    return client_for("powerschool_api", get_connection(api_conn_id(lea=lea)))


class AfterschoolSisUnsupported(ValueError):
    """A listed LEA's SIS is read through an API the afterschool stages cannot read or write (our own words, no
    connection details): no retry helps."""


def _afterschool_sis(lea: LeaConfig | None) -> str:
    """The afterschool stages read and write the SIS by SQL or the PowerSchool API: a listed LEA on another API
    is refused with what to do (the single LEA reads sis_db, as it always has)."""
    source = sis_source(lea)
    if _listed(lea) and source not in ("sql", "powerschool_api"):
        raise AfterschoolSisUnsupported(
            f"LEA {lea.code}'s SIS is read through {source}: the afterschool sync and its checks read and write the "
            f"SIS by SQL or the PowerSchool API only. Give LEA {lea.code} a SQL or PowerSchool SIS connection in the "
            f"LEA file, or pause its afterschool_sync and integration_health DAGs.")
    return source


def sis_reader(work: Path, lea: LeaConfig | None = None) -> Any:
    """The afterschool SIS reader for the configured source (SQL sis_db or the PowerSchool API; a listed LEA: its
    own SIS connection)."""
    from calpads.afterschool.sis_data import PowerSchoolReader, SqlReader

    if _afterschool_sis(lea) == "powerschool_api":
        return PowerSchoolReader(powerschool_client(lea), work / "api_pages")
    return SqlReader(engine(sis_db_conn_id(lea)))


def writeback_target(lea: LeaConfig | None = None) -> Any:
    """Where participation is written back (writeback_kind): SQL sis_db or the PowerSchool API; a listed LEA: its
    own SIS connection."""
    from calpads.afterschool.writeback import PowerSchoolTarget, SqlTarget

    _afterschool_sis(lea)
    if writeback_kind(lea) == "powerschool_api":
        return PowerSchoolTarget(powerschool_client(lea))
    return SqlTarget(engine(sis_db_conn_id(lea)))


def afterschool_drop(lea: LeaConfig | None = None) -> tuple[str, bool]:
    """(the afterschool drop folder, whether it was configured): the Variable afterschool_drop_path, else
    $AIRFLOW_HOME/afterschool_drop (not configured). A listed LEA: its entry's ``afterschool.drop_path``, else
    ``<that folder>/<code>`` (configured when it has no ``afterschool.conn_id``): never another LEA's folder."""
    from airflow.sdk import Variable

    base = Variable.get("afterschool_drop_path", default="")
    if not _listed(lea):
        return base or str(Path(airflow_home(), "afterschool_drop")), bool(base)
    if lea.afterschool_drop_path:
        return lea.afterschool_drop_path, True
    shared = base or str(Path(airflow_home(), "afterschool_drop"))
    return str(Path(shared, lea.code)), lea.afterschool_conn_id is None


def afterschool_conn_id(lea: LeaConfig | None = None) -> str | None:
    """The afterschool platform's HTTP connection: afterschool_api; a listed LEA's: its ``afterschool.conn_id``
    (None: it has none)."""
    return lea.afterschool_conn_id if _listed(lea) else "afterschool_api"


def afterschool_export(source: str, kind: str = "attendance", lea: LeaConfig | None = None) -> tuple[bytes, str, str]:
    """(bytes, source name, content type) of one file of the export (kind: attendance | registrations) from the
    drop folder or the afterschool_api connection (a listed LEA: its own, afterschool_drop/afterschool_conn_id)."""
    from airflow.sdk import BaseHook

    from calpads.afterschool import ingest

    drop, configured = afterschool_drop(lea)
    if source == "file" or (source == "auto" and (configured or Path(drop).exists())):
        data, name = ingest.read_drop(drop, kind)
        return data, name, ""
    conn_id = afterschool_conn_id(lea)
    if conn_id is None:
        raise FileNotFoundError(f"LEA {lea.code} has no afterschool export to fetch: its LEA entry names no "
                                f"afterschool.conn_id. Set afterschool.conn_id or afterschool.drop_path in the LEA "
                                f"file, or run with source = file")
    conn = BaseHook.get_connection(conn_id)
    return ingest.fetch_http(conn, kind=kind)


def scheduled_write_mode(lea: LeaConfig | None = None) -> str:
    """What a run with write_mode "setting" (every scheduled run) does: the Variable afterschool_write_mode,
    else [calpads] afterschool_write_mode, else dry_run. Anything else is refused (ValueError). A listed LEA:
    its entry's ``afterschool.write_mode`` (default dry_run), never the deployment's setting."""
    from airflow.sdk import Variable

    if _listed(lea):
        return lea.afterschool_write_mode
    value = (Variable.get("afterschool_write_mode", default="") or conf("afterschool_write_mode", "dry_run")).strip()
    if value not in WRITE_MODES:
        raise ValueError(f"the afterschool write-back setting (Variable afterschool_write_mode or "
                         f"AIRFLOW__CALPADS__AFTERSCHOOL_WRITE_MODE) is {value!r}: it must be dry_run or write")
    return value
