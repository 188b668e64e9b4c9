"""docs/rules.md stays true: every rule of the SPRG and staging suites is in a table row with its
expectation type and severity, no row names a rule that is gone, and every test it cites exists."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT

DOC = ROOT / "docs" / "rules.md"
SUITES = ["sprg", "staging_students", "staging_programs"]
ROW = re.compile(r"^\|(?:[^|]*\|)?\s*`(?P<rule>(?:SPRG|STAGE)[A-Za-z0-9._-]+)`\s*\|(?P<rest>.*)$")


def doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group("rule")] = m.group("rest")
    return rows


def expectations() -> list[dict]:
    path = ROOT / "great_expectations" / "expectations"
    return [e for s in SUITES for e in json.loads((path / f"{s}.json").read_text())["expectations"]]


@pytest.mark.parametrize("exp", expectations(), ids=lambda e: e["meta"]["rule_id"])
def test_every_rule_has_a_true_row(exp):
    rest = doc_rows().get(exp["meta"]["rule_id"])
    assert rest is not None, "missing from docs/rules.md"
    cells = [c.strip() for c in rest.split("|")]
    assert any(c.startswith(f"`{exp['type']}`") for c in cells), cells
    assert any(c.split(" ")[0] == exp["meta"]["severity"] for c in cells), cells


def test_no_row_names_a_rule_that_is_gone():
    assert set(doc_rows()) - {e["meta"]["rule_id"] for e in expectations()} == set()


def test_cited_tests_exist():
    text = DOC.read_text()
    for file, name in set(re.findall(r"`(test_[a-z_]+)\.py::(test_[a-z0-9_]+)", text)):
        candidates = list((ROOT / "tests").rglob(f"{file}.py"))
        assert candidates, file
        assert any(f"def {name}(" in p.read_text() for p in candidates), f"{file}.py::{name}"
