"""The demo district generator on a real PostgreSQL database (COPY path): the same
seed gives the same rows as on SQLite, and the SPRG builder reads it the same way.

Needs the server at 127.0.0.1:5432 (user postgres, trust); skipped when it is
unreachable, a failure when CI is set.
"""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.demo.cli import main as cli_main
from calpads.demo.generator import generate_district
from calpads.extracts.sprg import extract_sprg
from calpads.run_scope import RunScope
from calpads.sources.sis_schema import SIS_TABLES

pytestmark = pytest.mark.postgres
TABLES = (*SIS_TABLES, "DEMO_PLANTED_VIOLATIONS", "DEMO_PLANTED_SENR")


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A fresh PostgreSQL database (tests/conftest.py's pg_database)."""
    return pg_database


def _table(engine: sa.Engine, table: str) -> pd.DataFrame:
    df = pd.read_sql(f"SELECT * FROM {table} ORDER BY 1", engine)  # noqa: S608 (constant table names)
    df.columns = [c.lower() for c in df.columns]
    return df.map(lambda v: None if v is None or v != v else str(v))  # dates and numbers as text, NULL as None


def test_postgres_gets_the_same_district_as_sqlite(pg_url, tmp_path):
    pg = sa.create_engine(pg_url)
    lite = sa.create_engine(f"sqlite:///{tmp_path / 'sis.db'}")
    try:
        for engine in (pg, lite):
            summary = generate_district(engine, students=400, seed=13, dirty=0.05, log=lambda _m: None)
        assert summary.students == 400 and sum(summary.planted.values()) >= 19
        for table in TABLES:
            a, b = _table(pg, table), _table(lite, table)
            assert len(a) == len(b) and a.equals(b), table
        scope = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "submission": "eoy2"},
                                     pd.Timestamp("2026-06-30").date())
        records_pg, records_lite = extract_sprg(pg, scope), extract_sprg(lite, scope)
        assert len(records_pg) > 50
        pd.testing.assert_frame_equal(records_pg, records_lite)
    finally:
        pg.dispose()
        lite.dispose()


def test_cli_replaces_a_postgres_district(pg_url, capsys):
    url = pg_url.replace("postgresql+psycopg2://", "postgresql://")   # as an Airflow connection writes it
    assert cli_main(["--url", url, "--students", "120", "--no-attendance"]) == 0
    assert cli_main(["--url", url, "--students", "60"]) == 2         # tables exist, no --replace
    assert cli_main(["--url", url, "--students", "60", "--replace"]) == 0
    capsys.readouterr()
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM students").scalar() == 60
            assert conn.exec_driver_sql("SELECT count(*) FROM attendance").scalar() > 0
            lea = conn.exec_driver_sql("SELECT value FROM prefs WHERE name = 'districtnumber' AND schoolid = 0")
            assert len(lea.scalar()) == 7
    finally:
        engine.dispose()
