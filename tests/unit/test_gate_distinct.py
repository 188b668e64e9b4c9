"""The gate validates column rules once per distinct combination of the values they read
(calpads.quality.distinct): its answer is GX's answer over every row, rule by rule, counts and failing rows
included."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from calpads.layouts import load_layout
from calpads.quality import distinct, gate
from tests.unit.test_gate_rules import RUN_DATE, all_cases, repeated_cases


def _json(answer: Any) -> list[dict[str, Any]]:
    return [r.to_json_dict() for r in answer.results]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Every rule's failing and passing records, five times over (new ids): each value repeats."""
    records = repeated_cases(5, random_state=5)
    return gate.validation_frame(records, load_layout("SPRG"), RUN_DATE, first_row=1000)


def test_distinct_answer_is_gx_answer_over_every_row(frame, monkeypatch):
    suite = gate.gx_suite("SPRG")
    every_row = gate._validate("SPRG", frame, suite, None)
    calls: list[int] = []

    def validate(f: pd.DataFrame, rules: Any) -> Any:
        calls.append(len(f))
        return gate._validate("SPRG", f, rules, None)

    answer = distinct.validate_distinct(frame, suite, validate, row=gate.ROW, result_format=gate.RESULT_FORMAT)
    assert min(calls) < len(frame) / 5          # the column rules were given their combinations, not every row
    assert [r.expectation_config.meta.get("rule_id") for r in answer.results] == \
        [r.expectation_config.meta.get("rule_id") for r in every_row.results]
    for got, want in zip(_json(answer), _json(every_row), strict=True):
        assert got == want, got["expectation_config"]["meta"].get("rule_id")
    assert sum(not r.success for r in answer.results) >= 20   # the planted cases fail many rules


def test_rules_over_barely_repeating_columns_are_validated_over_every_row(frame):
    suite = gate.gx_suite("SPRG")
    seen: list[set[str]] = []

    def validate(f: pd.DataFrame, rules: Any) -> Any:
        seen.append(gate.suite_columns(rules) if len(f) == len(frame) else set())
        return gate._validate("SPRG", f, rules, None)

    distinct.validate_distinct(frame, suite, validate, row=gate.ROW, result_format=gate.RESULT_FORMAT)
    assert any("local_record_id" in cols for cols in seen)



def test_more_failing_rows_than_gx_lists_values_for(monkeypatch):
    """GX names every failing row but lists the values of the first 200 only: so do the answers over distinct
    combinations and over chunks (a rule here fails on more than 200 rows)."""
    records = repeated_cases(40, random_state=7)
    frame = gate.validation_frame(records, load_layout("SPRG"), RUN_DATE)
    suite = gate.gx_suite("SPRG")
    every_row = gate._validate("SPRG", frame, suite, None)
    assert max(r.result.get("unexpected_count", 0) for r in every_row.results) > 200
    answer = distinct.validate_distinct(frame, suite, lambda f, rules: gate._validate("SPRG", f, rules, None),
                                        row=gate.ROW, result_format=gate.RESULT_FORMAT)
    assert _json(answer) == _json(every_row)

    monkeypatch.setattr(gate, "CHUNK_ROWS", 1500)
    chunked = gate.run_gate(records, "SPRG", RUN_DATE, error_ceiling=0.99).validation_result
    assert [r.to_json_dict()["result"] for r in chunked.results] == [r["result"] for r in _json(every_row)]


def test_a_rule_on_a_column_the_records_lack_is_named_by_the_gate(tmp_path, monkeypatch):
    """Chunked too: the rule goes to GX over the rows, whose error names it (not a KeyError of the grouping)."""
    import json
    import shutil

    from calpads.quality import suite_builder

    root = tmp_path / "gx"
    shutil.copytree(suite_builder.default_gx_root(), root, ignore=shutil.ignore_patterns("uncommitted"))
    path = root / "expectations" / "sprg.json"
    suite = json.loads(path.read_text())
    rule = next(e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_in_set")
    rule["kwargs"]["column"] = "ctx_no_such_column"
    path.write_text(json.dumps(suite))
    cases, _ = all_cases()
    monkeypatch.setattr(gate, "CHUNK_ROWS", 40)
    with pytest.raises(gate.GateError, match=rule["meta"]["rule_id"]):
        gate.run_gate(cases, "SPRG", RUN_DATE, context_root=root)
