"""Run-time plumbing shared by the afterschool_sync, integration_health and calpads_deadline_watch DAGs:
where the SIS is read and written, the work folder, the publish root. Called inside tasks only.

Airflow configuration ([calpads] section, e.g. AIRFLOW__CALPADS__...):
  SIS_SOURCE                  sql (default) | powerschool_api: where the SIS is read
  SIS_CONN_ID                 API connection (default sis_powerschool)
  AFTERSCHOOL_WRITEBACK       sql | powerschool_api (default: as SIS_SOURCE)
  AFTERSCHOOL_ERROR_CEILING   share of invalid write-back rows that rejects the whole write (default 0.05)
  AFTERSCHOOL_WRITE_MODE      dry_run (default) | write: what scheduled afterschool_sync runs do
Variables: afterschool_drop_path (default $AIRFLOW_HOME/afterschool_drop), afterschool_write_mode (overrides
the config above), calpads_publish_root, calpads_work_root, integration_team_emails and the per-role lists
it_emails, calpads_coordinator_emails, afterschool_staff_emails (each defaults to integration_team_emails).
Connections: sis_db, calpads_store, afterschool_api,
sis_powerschool, smtp_default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def conf(key: str, fallback: str) -> str:
    from airflow.configuration import conf as airflow_conf

    return airflow_conf.get("calpads", key, fallback=fallback)


def airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME", str(Path.home() / "airflow"))


def sis_source() -> str:
    return conf("sis_source", "sql")


def writeback_kind() -> str:
    src = sis_source()
    return conf("afterschool_writeback", "powerschool_api" if src == "powerschool_api" else "sql")


def api_conn_id() -> str:
    """The SIS API connection: [calpads] sis_conn_id, else the source's default (sis_powerschool, sis_aeries, ...)."""
    from calpads.sources.api_sources import sis_api_name

    src = sis_source()
    return conf("sis_conn_id", sis_api_name(src if src != "sql" else "powerschool_api"))


def work_dir(dag_id: str, run_id: str) -> Path:
    from airflow.sdk import Variable

    root = Variable.get("calpads_work_root", default=f"{airflow_home()}/calpads_work")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    path = Path(root) / dag_id / safe
    from calpads.maintenance import private_dirs

    private_dirs(path)   # every level it creates 0700 (mkdir's mode only reaches the last one)
    return path


def publish_root() -> Any:
    from airflow.sdk import ObjectStoragePath, Variable

    root = Variable.get("calpads_publish_root", default=f"file://{airflow_home()}/calpads_out")
    if "://" not in root:
        root = f"file://{os.path.abspath(root)}"
    return ObjectStoragePath(root)


def engine(conn_id: str) -> Any:
    from calpads_airflow.connections import engine_for

    return engine_for(conn_id)


def powerschool_client() -> Any:
    from calpads.sources.api_sources import client_for, get_connection

    return client_for("powerschool_api", get_connection(api_conn_id()))


def sis_reader(work: Path) -> Any:
    """The SIS reader for the configured source (SQL sis_db or the PowerSchool API)."""
    from calpads.afterschool.sis_data import PowerSchoolReader, SqlReader

    if sis_source() == "powerschool_api":
        return PowerSchoolReader(powerschool_client(), work / "api_pages")
    return SqlReader(engine("sis_db"))


def writeback_target() -> Any:
    from calpads.afterschool.writeback import PowerSchoolTarget, SqlTarget

    if writeback_kind() == "powerschool_api":
        return PowerSchoolTarget(powerschool_client())
    return SqlTarget(engine("sis_db"))


def afterschool_export(source: str, kind: str = "attendance") -> tuple[bytes, str, str]:
    """(bytes, source name, content type) of one file of the export (kind: attendance | registrations) from the
    drop folder or the afterschool_api connection."""
    from airflow.sdk import BaseHook, Variable

    from calpads.afterschool import ingest

    drop = Variable.get("afterschool_drop_path", default="")
    if source == "file" or (source == "auto" and (drop or Path(airflow_home(), "afterschool_drop").exists())):
        data, name = ingest.read_drop(drop or Path(airflow_home(), "afterschool_drop"), kind)
        return data, name, ""
    conn = BaseHook.get_connection("afterschool_api")
    return ingest.fetch_http(conn, kind=kind)


WRITE_MODES = ("dry_run", "write")


def scheduled_write_mode() -> str:
    """What a run with write_mode "setting" (every scheduled run) does: the Variable afterschool_write_mode,
    else [calpads] afterschool_write_mode, else dry_run. Anything else is refused (ValueError)."""
    from airflow.sdk import Variable

    value = (Variable.get("afterschool_write_mode", default="") or conf("afterschool_write_mode", "dry_run")).strip()
    if value not in WRITE_MODES:
        raise ValueError(f"the afterschool write-back setting (Variable afterschool_write_mode or "
                         f"AIRFLOW__CALPADS__AFTERSCHOOL_WRITE_MODE) is {value!r}: it must be dry_run or write")
    return value
