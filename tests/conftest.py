"""Shared fixtures: real PostgreSQL databases, a real SMTP server, an Airflow home."""

from __future__ import annotations

import contextlib
import email
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("CALPADS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _pg_available() -> bool:
    try:
        eng = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


def require_postgres() -> None:
    """PostgreSQL tests fail (not skip) in CI when the server is unreachable."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL not reachable (set CI=1 to make this a failure)")


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "calpads_test") -> Iterator[str]:
    """A new PostgreSQL database (skips without PostgreSQL); its URL; dropped on exit."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def sqlite_frame(path: Path, sql: str) -> pd.DataFrame:
    """A query's rows from a SQLite file (a generated SIS, a store) as pandas."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return pd.read_sql_query(sql, con)
    finally:
        con.close()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test; its URL; dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(autouse=True)
def publish_share(tmp_path) -> Path:
    """tmp_path/"pub", created: the publish root is a mounted share that a run never creates
    (calpads.publish.target.check_root), so the tests' usual root exists before the run, as it would."""
    share = tmp_path / "pub"
    share.mkdir(mode=0o750, exist_ok=True)
    return share


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request, tmp_path) -> Iterator[sa.Engine]:
    """A calpads_store engine, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        eng = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    else:
        eng = sa.create_engine(request.getfixturevalue("pg_database"))
    yield eng
    eng.dispose()


class Mailbox:
    """Messages received by the local aiosmtpd server."""

    def __init__(self, folder: Path, port: int):
        self.folder = folder
        self.port = port

    @property
    def messages(self) -> list[Message]:
        return [email.message_from_bytes(p.read_bytes()) for p in sorted(self.folder.glob("*.eml"))]

    def texts(self) -> list[str]:
        out = []
        for msg in self.messages:
            parts = [msg["Subject"] or ""]
            for part in msg.walk():
                if part.get_content_maintype() == "text":
                    payload = part.get_payload(decode=True)
                    if payload:
                        parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
            out.append("\n".join(parts))
        return out


@pytest.fixture
def smtp_server(tmp_path) -> Iterator[Mailbox]:
    from calpads.demo.mailbox import start

    folder = tmp_path / "mail"
    controller = start(folder, port=0)
    port = controller.port
    try:
        yield Mailbox(folder, port)
    finally:
        controller.stop()


def smtp_conn_uri(port: int) -> str:
    return (f"smtp://127.0.0.1:{port}?disable_tls=true&disable_ssl=true"
            "&from_email=calpads-pipeline%40district.example&timeout=10&retry_limit=1")


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The session's Airflow home with a migrated SQLite metadata DB, shared by the DAG tests."""
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_base_env(AIRFLOW_HOME),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return AIRFLOW_HOME


def airflow_base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT / "plugins"),
        "AIRFLOW__CALPADS__TASK_RETRIES": "0",
    })
    return env


# Airflow reads its configuration when first imported: point it at a private home
# before any test imports it, so no test touches ~/airflow or the developer's setup.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="calpads-airflow-"))
os.environ.update(airflow_base_env(AIRFLOW_HOME))


def demo_sis(path: Path, *, students: int, seed: int, dirty: float, academic_year: str = "2025-2026") -> Path:
    """A generated demo district's SQLite SIS at ``path`` (calpads.demo.generator), quietly."""
    import sqlalchemy as sa

    from calpads.demo.generator import generate_district

    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        generate_district(engine, students=students, seed=seed, dirty=dirty, academic_year=academic_year,
                          log=lambda _m: None)
    finally:
        engine.dispose()
    return path
