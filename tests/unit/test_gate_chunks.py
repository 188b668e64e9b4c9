"""The gate validates a large run a chunk of records at a time (calpads.quality.chunks): its findings, summary,
held-back records and GX validation result (what the report and its Data Docs show) are those of the whole
batch validated in one piece, also when the records that share a key fall in different chunks."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from calpads.quality import distinct, gate
from calpads.quality.report import redacted_validation_result
from tests.unit.test_gate_rules import RUN_DATE, repeated_cases


def _answer(result: gate.GateResult) -> dict[str, Any]:
    out = redacted_validation_result(result).to_json_dict()
    out.pop("meta", None)
    out.pop("id", None)
    return out


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    """Every rule's failing and passing records, three times over (new ids), in an order that puts the records
    sharing an operational key far apart."""
    return repeated_cases(3, random_state=3)


def test_chunks_answer_as_the_whole_batch(records, monkeypatch):
    monkeypatch.setattr(gate, "CHUNK_ROWS", 10**9)
    one = gate.run_gate(records, "SPRG", RUN_DATE, error_ceiling=0.9)
    monkeypatch.setattr(gate, "CHUNK_ROWS", 40)
    across_chunks: list[int] = []
    answer = distinct.AcrossChunks.answer

    def answer_and_count(self: distinct.AcrossChunks, validate: Any) -> Any:
        across_chunks.extend(self.positions)
        return answer(self, validate)

    monkeypatch.setattr(distinct.AcrossChunks, "answer", answer_and_count)
    chunked = gate.run_gate(records, "SPRG", RUN_DATE, error_ceiling=0.9)
    assert len(across_chunks) >= 20   # most column rules were validated once over every chunk's combinations

    dup = one.findings[one.findings["rule_id"] == "SPRG-DUPLICATE-KEY"]
    rows = records.index[records["local_record_id"].isin(dup["local_record_id"])]
    assert len(rows) >= 2 and len(set(rows // 40)) >= 2   # the key's records fall in different chunks
    pd.testing.assert_frame_equal(chunked.findings, one.findings, check_dtype=False)   # text as str or object
    assert chunked.summary == one.summary
    pd.testing.assert_frame_equal(chunked.held_back, one.held_back)
    pd.testing.assert_frame_equal(chunked.publishable, one.publishable)
    assert _answer(chunked) == _answer(one)
