"""A run configured for one LEA (RunContext.lea_code) that reads another LEA's SIS stops in extract with
LeaMismatch before anything is built or counted, in words the alert email carries; read from its own LEA's SIS,
the same run extracts."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.alerts.messages import failing_part, failure_email
from calpads.failures import LeaMismatch
from calpads.run_scope import RunScope

YEAR = "2025-2026"
TODAY = date(2026, 6, 20)
CONFIGURED, OTHER = "5611111", "5622222"


@pytest.fixture(scope="module")
def other_lea_sis(tmp_path_factory) -> Path:
    """A demo SIS that holds LEA OTHER's data."""
    from calpads.demo.generator import generate_district

    path = tmp_path_factory.mktemp("sis") / "other.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    generate_district(engine, students=300, seed=3, academic_year=YEAR, lea_code=OTHER, log=lambda _m: None)
    engine.dispose()
    return path


def _context(root: Path, record_type: str, lea_code: str | None) -> pipeline.RunContext:
    scope = RunScope.from_params(record_type, {"academic_year": YEAR}, today=TODAY)
    return pipeline.RunContext(record_type, f"calpads_{record_type.lower()}", f"manual__{record_type}", scope,
                               root / "work" / record_type, root / "pub", lea_code=lea_code)


def _student_names(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {v for row in con.execute("SELECT FIRST_NAME, LAST_NAME FROM STUDENTS") for v in row}
    finally:
        con.close()


@pytest.mark.parametrize("record_type", ["SPRG", "SENR"])
def test_another_lea_sis_stops_the_run_before_anything_is_built(other_lea_sis, tmp_path, record_type):
    store = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    ctx = _context(tmp_path, record_type, CONFIGURED)
    with pytest.raises(LeaMismatch) as caught:
        pipeline.extract(ctx, sa.create_engine(f"sqlite:///{other_lea_sis}"), store_engine=store)
    message = str(caught.value)
    assert f"LEA {CONFIGURED}" in message and f"LEA {OTHER}'s data" in message
    assert "nothing was built or published" in message and "LEA configuration" in message
    assert not ctx.path(pipeline.RECORDS).exists() and not ctx.path(pipeline.NOT_EXTRACTED).exists()
    assert "lea" not in ctx.state()
    # The staging gate's counts are kept per LEA: none were saved for either LEA by this run.
    assert not sa.inspect(store).has_table("calpads_staging_counts") or not store.connect().execute(
        sa.text("SELECT COUNT(*) FROM calpads_staging_counts")).scalar()

    part, todo = failing_part(caught.value)
    assert part == "LEA configuration" and "SIS connection" in todo and "docs/leas.md" in todo
    subject, body = failure_email(dag_id=f"calpads_{record_type.lower()}__{CONFIGURED}", run_id="manual__x",
                                  task_id="extract_records", try_number=1, exception=caught.value, log_url=None)
    assert "(LEA configuration)" in subject and f"LEA {OTHER}" in body
    words = set(message.replace(".", " ").replace(":", " ").replace("'", " ").split())
    assert not words & _student_names(other_lea_sis)


def test_the_configured_lea_own_sis_extracts(other_lea_sis, tmp_path):
    ctx = _context(tmp_path, "SPRG", OTHER)
    out = pipeline.extract(ctx, sa.create_engine(f"sqlite:///{other_lea_sis}"))
    assert out["reporting_lea"] == OTHER and out["records_extracted"] > 50
    assert ctx.path(pipeline.RECORDS).exists()


def test_no_configured_lea_extracts_whatever_the_sis_holds(other_lea_sis, tmp_path):
    out = pipeline.extract(_context(tmp_path, "SPRG", None), sa.create_engine(f"sqlite:///{other_lea_sis}"))
    assert out["reporting_lea"] == OTHER
