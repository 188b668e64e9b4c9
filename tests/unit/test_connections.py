from airflow.sdk.definitions.connection import Connection

from calpads_airflow.connections import sqlalchemy_url


def conn(uri: str) -> Connection:
    return Connection.from_uri(uri, conn_id="x")


def test_sqlite_connection_maps_to_an_absolute_file():
    assert str(sqlalchemy_url(conn("sqlite:////data/sis.db"))) == "sqlite:////data/sis.db"


def test_postgres_connection_gets_the_psycopg2_driver_and_keeps_the_password_out_of_str():
    url = sqlalchemy_url(conn("postgresql://calpads:s3cret@db.example:5432/sis"))
    assert url.drivername == "postgresql+psycopg2" and url.database == "sis" and url.port == 5432
    assert "s3cret" not in str(url)  # SQLAlchemy masks it when rendered
    assert url.password == "s3cret"


def test_a_sqlite_connection_gives_an_owner_only_database_through_the_dbapi_hook(tmp_path, monkeypatch):
    """engine_for follows the common-sql provider's conventions (DbApiHook.get_sqlalchemy_engine), so the
    hook's own DB-API helpers work too; the database file is created owner-only whatever the umask."""
    import os
    import stat

    from calpads_airflow.connections import SqlDatabaseHook, engine_for

    db = tmp_path / "store.db"
    monkeypatch.setenv("AIRFLOW_CONN_STORE_X", f"sqlite:///{db}")
    old = os.umask(0)
    try:
        engine = engine_for("store_x")
        with engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            c.exec_driver_sql("INSERT INTO t VALUES (7)")
        engine.dispose()
    finally:
        os.umask(old)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert SqlDatabaseHook("store_x").get_records("SELECT x FROM t") == [(7,)]
