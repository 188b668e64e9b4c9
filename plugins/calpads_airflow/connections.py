"""SQLAlchemy engines from Airflow connections (credentials only ever come from connections)."""

from __future__ import annotations

import sqlalchemy as sa

from calpads.maintenance import private_sqlite_file

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
