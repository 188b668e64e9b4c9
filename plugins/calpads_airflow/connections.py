"""SQLAlchemy engines from Airflow connections (credentials only ever come from connections).

``SqlDatabaseHook`` follows the common-sql provider's conventions (``DbApiHook``): the connection
becomes a ``sqlalchemy_url``, and ``get_sqlalchemy_engine(engine_kwargs)`` creates the engine. It serves
the connection types a district's SIS or the pipeline's store may use (sqlite, postgres, mssql,
oracle, mysql) without a provider package per database; the extra ``sqlalchemy_driver`` picks another
driver (e.g. ``mssql+pymssql``).
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from airflow.providers.common.sql.hooks.sql import DbApiHook

from calpads.private_files import create_private


class SqlDatabaseHook(DbApiHook):
    """A SQL database the pipeline reads or writes (sis_db, calpads_store), as a SQLAlchemy engine."""

    conn_name_attr = "sql_conn_id"
    default_conn_name = "sis_db"
    hook_name = "CALPADS SQL database"
    # SQLAlchemy's dialect+driver per Airflow connection type, where SQLAlchemy's own default differs
    # from the driver this project installs or documents (docs/sis-sources.md).
    DIALECTS = {
        "postgres": "postgresql+psycopg2",
        "postgresql": "postgresql+psycopg2",
        "mssql": "mssql+pyodbc",
        "oracle": "oracle+oracledb",
        "mysql": "mysql+pymysql",
    }

    @property
    def sqlalchemy_url(self) -> sa.URL:
        return sqlalchemy_url(self.connection)

    def get_sqlalchemy_engine(self, engine_kwargs: dict[str, Any] | None = None) -> sa.Engine:
        """The engine, with pre-ping; a SQLite file is made owner-only before SQLite creates it."""
        kwargs = dict(engine_kwargs or {})
        kwargs.setdefault("pool_pre_ping", True)
        url = self.sqlalchemy_url
        if url.get_backend_name() == "sqlite":
            kwargs.setdefault("connect_args", {"timeout": 60})
            private_sqlite_file(url.database)
        return sa.create_engine(url, **kwargs)

    def get_conn(self) -> Any:
        return self.get_sqlalchemy_engine().raw_connection()


def sqlalchemy_url(conn: Any) -> sa.URL:
    """An Airflow Connection as a SQLAlchemy URL; the extra ``sqlalchemy_driver`` overrides the driver, other
    extras become the URL's query (driver options)."""
    extra = conn.extra_dejson or {}
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        return sa.make_url(f"sqlite:///{conn.schema or conn.host}")
    driver = extra.get("sqlalchemy_driver") or SqlDatabaseHook.DIALECTS.get(conn_type) or conn_type
    query = {k: str(v) for k, v in extra.items() if k != "sqlalchemy_driver"}
    return sa.URL.create(driver, username=conn.login or None, password=conn.password or None, host=conn.host or None,
                         port=conn.port or None, database=conn.schema or None, query=query)


def engine_for(conn_id: str, **kwargs: Any) -> sa.Engine:
    """The SQLAlchemy engine of the connection ``conn_id`` (kwargs: create_engine's)."""
    return SqlDatabaseHook(conn_id).get_sqlalchemy_engine(kwargs)


def private_sqlite_file(path: str | None) -> None:
    """A SQLite database holds student data: create it owner-only (0600) before SQLite would create it with
    the umask's mode (0644). SQLite gives its journal and WAL files the database file's mode."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    create_private(os.path.abspath(path))
