"""docs/rules.md stays true: every rule of the SPRG and staging suites, and every hand-written SENR rule, is in a
table row with its expectation type and severity, no row names a rule that is gone, and every test it cites
exists."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT

DOC = ROOT / "docs" / "rules.md"
SUITES = ["sprg", "staging_students", "staging_programs"]   # every rule has a row
BUSINESS_RULE_SUITES = ["senr"]                             # every hand-written rule has a row (generated: may)
ROW = re.compile(r"^\|(?:[^|]*\|)?\s*`(?P<rule>(?:SPRG|STAGE|SENR)[A-Za-z0-9._-]+)`\s*\|(?P<rest>.*)$")


def doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group("rule")] = m.group("rest")
    return rows


def _suite(name: str) -> list[dict]:
    return json.loads((ROOT / "great_expectations" / "expectations" / f"{name}.json").read_text())["expectations"]


def expectations() -> list[dict]:
    """The rules that must have a row."""
    return [*(e for s in SUITES for e in _suite(s)),
            *(e for s in BUSINESS_RULE_SUITES for e in _suite(s) if not e["meta"].get("generated"))]


def documentable() -> dict[str, dict]:
    """Every rule a row may name."""
    return {e["meta"]["rule_id"]: e for s in (*SUITES, *BUSINESS_RULE_SUITES) for e in _suite(s)}


def _check_row(exp: dict) -> None:
    rest = doc_rows().get(exp["meta"]["rule_id"])
    assert rest is not None, "missing from docs/rules.md"
    cells = [c.strip() for c in rest.split("|")]
    assert any(c.startswith(f"`{exp['type']}`") for c in cells), cells
    assert any(c.split(" ")[0] == exp["meta"]["severity"] for c in cells), cells


@pytest.mark.parametrize("exp", expectations(), ids=lambda e: e["meta"]["rule_id"])
def test_every_rule_has_a_true_row(exp):
    _check_row(exp)


def test_rows_of_generated_senr_rules_are_true():
    rules = documentable()
    for rule_id in doc_rows():
        if rule_id.startswith("SENR."):
            _check_row(rules[rule_id])


def test_no_row_names_a_rule_that_is_gone():
    assert set(doc_rows()) - set(documentable()) == set()


def test_cited_tests_exist():
    text = DOC.read_text()
    for file, name in set(re.findall(r"`(test_[a-z_]+)\.py::(test_[a-z0-9_]+)", text)):
        candidates = list((ROOT / "tests").rglob(f"{file}.py"))
        assert candidates, file
        assert any(f"def {name}(" in p.read_text() for p in candidates), f"{file}.py::{name}"
