"""On a generated district with --dirty, every planted violation is caught with the
right rule id and nothing else is flagged (the generator records its ground truth)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.run_scope import RunScope


@pytest.fixture(scope="module")
def dirty_district(tmp_path_factory):
    from calpads.demo.generator import generate_district

    path = tmp_path_factory.mktemp("dirty") / "sis.db"
    eng = sa.create_engine(f"sqlite:///{path}")
    generate_district(eng, students=3000, seed=11, dirty=0.02, academic_year="2025-2026")
    return eng


def planted(eng: sa.Engine) -> pd.DataFrame:
    df = pd.read_sql("SELECT STUDENTID, PROGRAM_ID, SERVICECODE, KIND, RULE_ID FROM DEMO_PLANTED_VIOLATIONS", eng)
    df.columns = [c.lower() for c in df.columns]
    rid = df["studentid"].astype(str) + "." + df["program_id"].astype(str)
    svc = df["servicecode"].fillna("")
    df["local_record_id"] = rid.where(svc == "", rid + "." + svc)
    return df


@pytest.mark.parametrize("submission", ["eoy2", "fall1"])
def test_planted_violations_are_caught_with_the_right_rule_and_nothing_else(dirty_district, tmp_path, submission):
    scope = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "submission": submission},
                                 today=date(2026, 5, 1))
    ctx = pipeline.RunContext("SPRG", "calpads_sprg", f"t_{submission}", scope, tmp_path / "work", tmp_path / "pub")
    pipeline.extract(ctx, dirty_district)
    pipeline.gate(ctx, run_date=scope.today, error_ceiling=1.0)
    extracted = set(pd.read_parquet(ctx.path(pipeline.RECORDS))["local_record_id"])
    findings = pd.read_csv(ctx.path("report") / "findings.csv", dtype=str)
    found = set(zip(findings["local_record_id"], findings["rule_id"], strict=True))

    truth = planted(dirty_district)
    truth = truth[truth["local_record_id"].isin(extracted)]
    expected = set(zip(truth["local_record_id"], truth["rule_id"], strict=True))
    assert len(expected) >= 5, "the generator planted too few violations for this program set"
    missed = expected - found
    extra = found - expected
    assert not missed, f"planted but not caught: {sorted(missed)[:20]}"
    assert not extra, f"flagged but not planted: {sorted(extra)[:20]}"


def test_every_planted_kind_is_extracted_by_some_program_set(dirty_district, tmp_path):
    kinds = set(planted(dirty_district)["kind"])
    seen: set[str] = set()
    for submission in ("eoy2", "fall1"):
        scope = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "submission": submission},
                                     today=date(2026, 5, 1))
        ctx = pipeline.RunContext("SPRG", "calpads_sprg", f"k_{submission}", scope, tmp_path / submission,
                                  tmp_path / "pub")
        pipeline.extract(ctx, dirty_district)
        extracted = set(pd.read_parquet(ctx.path(pipeline.RECORDS))["local_record_id"])
        truth = planted(dirty_district)
        seen |= set(truth[truth["local_record_id"].isin(extracted)]["kind"])
    assert kinds == seen, f"kinds never extracted: {sorted(kinds - seen)}"
