"""Gate policy: the error ceiling, bypass, blank handling, a broken rule, and the suite kept in sync with the layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from calpads.quality import suite_builder
from calpads.quality.gate import GateError, run_gate
from tests.unit.test_gate_rules import RUN_DATE, base_record, frame


def ten_records_one_error():
    records = [base_record(i) for i in range(1, 10)] + [base_record(10, program_code="999")]
    return frame(records)


def test_one_error_in_ten_exceeds_a_5_percent_ceiling() -> None:
    result = run_gate(ten_records_one_error(), "SPRG", RUN_DATE, error_ceiling=0.05)
    assert result.ceiling_exceeded and result.summary["ceiling_exceeded"]
    assert result.summary["error_share"] == pytest.approx(0.1)
    assert len(result.held_back) == 1 and len(result.publishable) == 9


def test_one_error_in_ten_is_within_a_20_percent_ceiling() -> None:
    result = run_gate(ten_records_one_error(), "SPRG", RUN_DATE, error_ceiling=0.2)
    assert not result.ceiling_exceeded and result.summary["ceiling"] == 0.2


def test_exactly_at_the_ceiling_is_not_exceeded() -> None:
    result = run_gate(ten_records_one_error(), "SPRG", RUN_DATE, error_ceiling=0.1)
    assert not result.ceiling_exceeded


def test_bypass_publishes_everything_and_says_so() -> None:
    result = run_gate(ten_records_one_error(), "SPRG", RUN_DATE, bypass=True)
    assert len(result.publishable) == 10 and result.held_back.empty
    assert result.summary["bypass"] is True
    assert result.summary["records_with_errors"] == 1 and result.summary["records_held_back"] == 0
    assert list(result.findings["rule_id"]) == ["SPRG.3.13.code_set"]
    json.dumps(result.summary)          # JSON-serialisable


def test_blank_strings_count_as_blank_and_index_is_ignored() -> None:
    df = frame([base_record(1, ssid="  "), base_record(2)])
    df.index = [40, 7]                  # a caller's odd index must not confuse row numbers
    result = run_gate(df, "SPRG", RUN_DATE)
    assert list(result.findings["rule_id"]) == ["SPRG.3.07.required"]
    assert list(result.held_back["local_student_id"]) == ["S1001"]
    assert list(result.publishable["local_student_id"]) == ["S1002"]


def test_no_records() -> None:
    result = run_gate(frame([base_record()]).iloc[0:0], "SPRG", RUN_DATE)
    assert result.findings.empty and result.summary["records_checked"] == 0 and not result.ceiling_exceeded


def test_a_rule_that_cannot_run_stops_the_gate(tmp_path: Path) -> None:
    root = tmp_path / "gx"
    shutil.copytree(suite_builder.default_gx_root(), root, ignore=shutil.ignore_patterns("uncommitted"))
    path = root / "expectations" / "sprg.json"
    suite = json.loads(path.read_text())
    suite["expectations"][-1]["kwargs"]["column"] = "ctx_no_such_column"
    path.write_text(json.dumps(suite))
    with pytest.raises(GateError, match="SPRG-SCHOOL-OF-SERVICE"):
        run_gate(frame([base_record()]), "SPRG", RUN_DATE, context_root=root)


def test_missing_layout_column_is_a_gate_error() -> None:
    with pytest.raises(GateError, match="ssid"):
        run_gate(frame([base_record()]).drop(columns="ssid"), "SPRG", RUN_DATE)


def test_committed_suite_is_in_sync_with_the_layout() -> None:
    path = suite_builder.suite_path("SPRG")
    assert path.read_text() == suite_builder.render_suite("SPRG"), (
        "great_expectations/expectations/sprg.json is out of date: run python -m calpads.quality.suite_builder")
    assert suite_builder.main(["--check"]) == 0


def test_generator_keeps_hand_written_rules_and_replaces_generated_ones(tmp_path: Path) -> None:
    root = tmp_path / "gx"
    (root / "expectations").mkdir(parents=True)
    committed = json.loads(suite_builder.suite_path("SPRG").read_text())
    business = [e for e in committed["expectations"] if not e["meta"].get("generated")]
    stale = dict(committed["expectations"][0], meta={**committed["expectations"][0]["meta"], "rule_text": "old"})
    (root / "expectations" / "sprg.json").write_text(json.dumps({**committed, "expectations": [stale, *business]}))
    assert suite_builder.main(["--check", "--gx-root", str(root)]) == 1
    suite_builder.write_suite("SPRG", root)
    regenerated = json.loads((root / "expectations" / "sprg.json").read_text())
    assert regenerated == committed
