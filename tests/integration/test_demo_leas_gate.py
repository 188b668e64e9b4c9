"""Another demo LEA's codes (calpads.demo.district: school codes from the LEA code, longer local student ids) are
as valid to the quality gate as the default LEA's: the same seed gives the same records but for those codes, and
the gate holds back exactly as many of them, naming the same rules."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.run_scope import RunScope

TODAY = date(2026, 6, 20)
OTHER_LEA = "0161119"     # a county code with a leading zero


@pytest.fixture(scope="module")
def districts(tmp_path_factory) -> dict[str, Path]:
    from calpads.demo.generator import generate_district

    root = tmp_path_factory.mktemp("leas")
    out = {}
    for lea in ("5699999", OTHER_LEA):
        engine = sa.create_engine(f"sqlite:///{root / lea}.db")
        generate_district(engine, students=400, seed=8, dirty=0.03, lea_code=lea, log=lambda _m: None)
        engine.dispose()
        out[lea] = root / f"{lea}.db"
    return out


def gate(tmp_path: Path, sis: Path, record_type: str, lea: str) -> tuple[dict, Counter]:
    scope = RunScope.from_params(record_type, {"academic_year": "2025-2026"}, today=TODAY)
    ctx = pipeline.RunContext(record_type, f"calpads_{record_type.lower()}", f"manual__{lea}", scope,
                              tmp_path / lea / "work", tmp_path / "pub", lea_code=lea)
    extracted = pipeline.extract(ctx, sa.create_engine(f"sqlite:///{sis}"))
    summary = pipeline.gate(ctx, run_date=TODAY, error_ceiling=1.0)
    with (ctx.path("report") / "findings.csv").open() as fh:
        rules = Counter((r["rule_id"], r["severity"]) for r in csv.DictReader(fh))
    return {"extracted": extracted["records_extracted"], "held": summary["records_held_back"]}, rules


@pytest.mark.parametrize("record_type", ["SPRG", "SENR"])
def test_another_lea_passes_the_gate_as_the_default_lea_does(districts, tmp_path, record_type):
    default = gate(tmp_path, districts["5699999"], record_type, "5699999")
    other = gate(tmp_path, districts[OTHER_LEA], record_type, OTHER_LEA)
    assert default[0]["extracted"] > 100
    assert other == default
