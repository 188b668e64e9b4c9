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
