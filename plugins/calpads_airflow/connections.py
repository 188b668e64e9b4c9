"""SQLAlchemy engines from Airflow connections (credentials only ever come from connections)."""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa

log = logging.getLogger(__name__)

DRIVERS = {
    "sqlite": "sqlite",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mssql": "mssql+pyodbc",
    "oracle": "oracle+oracledb",
    "mysql": "mysql+pymysql",
}


def sqlalchemy_url(conn) -> sa.URL:
    """Map an Airflow Connection to a SQLAlchemy URL; extra ``sqlalchemy_driver`` overrides the driver."""
    extra = conn.extra_dejson or {}
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        return sa.make_url(f"sqlite:///{conn.schema or conn.host}")
    driver = extra.get("sqlalchemy_driver") or DRIVERS.get(conn_type) or conn_type
    query = {k: str(v) for k, v in extra.items() if k not in ("sqlalchemy_driver",)}
    return sa.URL.create(driver, username=conn.login or None, password=conn.password or None, host=conn.host or None,
                         port=conn.port or None, database=conn.schema or None, query=query)


def engine_for(conn_id: str, **kwargs) -> sa.Engine:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    url = sqlalchemy_url(conn)
    kwargs.setdefault("pool_pre_ping", True)
    if url.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"timeout": 60})
        private_sqlite_file(url.database)
    return sa.create_engine(url, **kwargs)


def private_sqlite_file(path: str | None) -> None:
    """A SQLite database holds student data: create it owner-only (0600) before SQLite would create it with
    the umask's mode (0644), and take the group's and others' bits off one we own. SQLite gives its journal
    and WAL files the database file's mode. A missing folder is left alone: the first connection then fails
    and names the database."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        os.chmod(path, 0o600)
        return
    except FileExistsError:
        pass
    except OSError as exc:   # a read-only folder: the connection reports it
        log.warning("Could not create %s owner-only: %s", path, exc.strerror)
        return
    st = os.stat(path)
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(path, 0o600)
        log.info("Made %s readable by its owner only (it held group/other permissions)", path)
