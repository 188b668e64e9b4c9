"""SPRG quality gate, rule by rule: for every rule id a hand-made failing record (which must fire
that rule and no other) and a passing one (which must fire nothing at all).

The records come from ``base_record`` (valid) with one change each (CASES); the other gate and
report tests import this factory. All cases run through one gate call (module fixture) so the
suite stays fast; each record is then checked on its own.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pandas as pd
import pytest

from calpads.layouts import load_layout
from calpads.quality.gate import GateResult, run_gate

RUN_DATE = date(2026, 1, 15)          # start-date limit: 2026-07-15
# Identifying test values: none of them may appear in a report file or the summary.
FIRST_NAME = "Zyxandra"
LAST_NAME = "Quillfeather"
BIRTH_DATE = "20120304"
SSID = "9081726354"


def base_record(n: int = 1, **changes: Any) -> dict[str, Any]:
    """A record that passes every rule: program 181 (free meals), eligible, open-ended, enrolled."""
    rec: dict[str, Any] = {
        "record_type": "SPRG",
        "transaction_type": None,
        "local_record_id": f"{1000 + n}.{5000 + n}",
        "reporting_lea": "1964733",
        "school_of_attendance": "1930001",
        "academic_year_id": "2025-2026",
        "ssid": SSID if n == 1 else f"9{n:09d}",      # one SSID per record: no two records share a key
        "local_student_id": f"S{1000 + n}",
        "legal_first_name": FIRST_NAME,
        "legal_last_name": LAST_NAME,
        "birth_date": BIRTH_DATE,
        "gender_code": "F",
        "program_code": "181",
        "membership_code": "1",
        "membership_start_date": "20250815",
        "membership_end_date": None,
        "service_academic_year": None,
        "service_code": None,
        "cpa_id": None,
        "migrant_id": None,
        "primary_disability_code": None,
        "dsea": None,
        "homeless_dwelling_type": None,
        "unaccompanied_youth": None,
        "runaway_youth": None,
        "ctx_student_id": str(1000 + n),
        "ctx_program_id": str(5000 + n),
        "ctx_preferred_gender": "F",
        "ctx_legal_gender": None,
        "ctx_sped_exit_code": None,
        "ctx_enrolled_at_school": "Y",
        "ctx_enrollment_covers_range": "Y",
        "ctx_enrollment_exit_date": None,
        "ctx_primary_residence_category": None,
        "ctx_enrollment_bad_date": None,
    }
    unknown = set(changes) - set(rec)
    assert not unknown, f"unknown columns {unknown}"
    rec.update(changes)
    return rec


def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records as the builder hands them over: object columns, None for blank."""
    layout = load_layout("SPRG")
    df = pd.DataFrame(records)
    ordered = [*layout.columns, *[c for c in df.columns if c.startswith("ctx_")]]
    df = df[ordered].astype("object")
    return df.where(df.notna(), None)


# Programs and their companion fields, so that a field-level case fires only its own rule.
P113 = {"program_code": "113", "membership_code": "3", "cpa_id": "12345"}
P122 = {"program_code": "122", "membership_code": "3", "service_code": "08", "service_academic_year": "2025-2026"}
P135 = {"program_code": "135", "migrant_id": "0612345678"}
P144 = {"program_code": "144", "primary_disability_code": "240", "dsea": "1964733"}
P191 = {"program_code": "191", "membership_code": "3", "homeless_dwelling_type": "110",
        "unaccompanied_youth": "N", "runaway_youth": "N"}

DUPLICATE_SSID = "8000000001"

# rule id -> (changes that break only that rule, changes that stay just inside it)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # field level, generated from the layout
    "SPRG.3.01.required": ({"record_type": None}, {"record_type": "SPRG"}),
    "SPRG.3.01.fixed": ({"record_type": "SPRX"}, {"record_type": "SPRG"}),
    "SPRG.3.02.code_set": ({"transaction_type": "X"}, {"transaction_type": "D"}),
    "SPRG.3.03.required": ({"local_record_id": None}, {"local_record_id": "77.88"}),
    "SPRG.3.03.format": ({"local_record_id": "1001^5001"}, {"local_record_id": "1001.5001.x"}),
    "SPRG.3.03.length": ({"local_record_id": "9" * 256}, {"local_record_id": "8" * 255}),
    "SPRG.3.04.required": ({"reporting_lea": None}, {"reporting_lea": "0000001"}),
    "SPRG.3.04.format": ({"reporting_lea": "196473"}, {"reporting_lea": "1964734"}),
    "SPRG.3.05.required": ({"school_of_attendance": None}, {"school_of_attendance": "0000001"}),
    "SPRG.3.05.format": ({"school_of_attendance": "19300A1"}, {"school_of_attendance": "1930002"}),
    "SPRG.3.06.required": ({"academic_year_id": None}, {"academic_year_id": "2025-2026"}),
    "SPRG.3.06.format": ({"academic_year_id": "2025/2026"}, {"academic_year_id": "2025-2026"}),
    "SPRG.3.07.required": ({"ssid": None}, {"ssid": "1111111111"}),
    "SPRG.3.07.format": ({"ssid": "90817263"}, {"ssid": "0000000001"}),
    "SPRG.3.08.required": ({"local_student_id": None}, {"local_student_id": "A"}),
    "SPRG.3.08.format": ({"local_student_id": "S10\n01"}, {"local_student_id": "S-1001"}),
    "SPRG.3.08.length": ({"local_student_id": "S" * 16}, {"local_student_id": "S" * 15}),
    "SPRG.3.09.required": ({"legal_first_name": None}, {"legal_first_name": "Al"}),
    "SPRG.3.09.format": ({"legal_first_name": "Zyx^andra"}, {"legal_first_name": "Zyx-Andra O'Neil"}),
    "SPRG.3.09.length": ({"legal_first_name": "Z" * 31}, {"legal_first_name": "Z" * 30}),
    "SPRG.3.10.required": ({"legal_last_name": None}, {"legal_last_name": "Q"}),
    "SPRG.3.10.format": ({"legal_last_name": "Quill\rfeather"}, {"legal_last_name": "Quill Feather"}),
    "SPRG.3.10.length": ({"legal_last_name": "Q" * 51}, {"legal_last_name": "Q" * 50}),
    "SPRG.3.11.required": ({"birth_date": None}, {"birth_date": "20120229"}),
    "SPRG.3.11.format": ({"birth_date": "20120431"}, {"birth_date": "20120430"}),
    "SPRG.3.12.required": ({"gender_code": None}, {"gender_code": "M"}),
    "SPRG.3.12.code_set": ({"gender_code": "Q"}, {"gender_code": "X"}),
    "SPRG.3.13.required": ({"program_code": None}, {"program_code": "182"}),
    "SPRG.3.13.code_set": ({"program_code": "999"}, {"program_code": "127"}),
    "SPRG.3.14.required": ({"membership_code": None}, {"membership_code": "3"}),
    "SPRG.3.14.code_set": ({"membership_code": "2"}, {"membership_code": "3"}),
    "SPRG.3.15.required": ({"membership_start_date": None}, {"membership_start_date": "20250701"}),
    "SPRG.3.15.format": ({"membership_start_date": "2025-08-15"}, {"membership_start_date": "20250816"}),
    "SPRG.3.16.format": ({"membership_end_date": "2026013"}, {"membership_end_date": "20260130"}),
    "SPRG.3.19.format": ({**P113, "cpa_id": "12^45"}, {**P113, "cpa_id": "A1234"}),
    "SPRG.3.19.length": ({**P113, "cpa_id": "123456"}, {**P113, "cpa_id": "12345"}),
    "SPRG.3.20.format": ({**P135, "migrant_id": "0612\n45678"}, {**P135, "migrant_id": "06123456789"}),
    "SPRG.3.20.length": ({**P135, "migrant_id": "061234567890"}, {**P135, "migrant_id": "06123456789"}),
    "SPRG.3.21.code_set": ({**P144, "primary_disability_code": "999"}, {**P144, "primary_disability_code": "320"}),
    "SPRG.3.22.format": ({**P144, "dsea": "196473"}, {**P144, "dsea": "1964733"}),
    "SPRG.3.23.code_set": ({**P191, "homeless_dwelling_type": "140"}, {**P191, "homeless_dwelling_type": "130"}),
    "SPRG.3.24.code_set": ({**P191, "unaccompanied_youth": "U"}, {**P191, "unaccompanied_youth": "Y"}),
    "SPRG.3.25.code_set": ({**P191, "runaway_youth": "R"}, {**P191, "runaway_youth": "Y"}),
    # business rules
    "SPRG-GENDER-X-LEGAL": ({"ctx_preferred_gender": "X", "gender_code": "X"},
                            {"ctx_preferred_gender": "X", "ctx_legal_gender": "M", "gender_code": "M"}),
    "SPRG-MEMBERSHIP-CODE": ({"program_code": "190", "membership_code": "1"},
                             {"program_code": "190", "membership_code": "3"}),
    "SPRG-START-AFTER-BIRTH": ({"membership_start_date": "20120303"}, {"membership_start_date": BIRTH_DATE}),
    "SPRG-START-NOT-FUTURE": ({"membership_start_date": "20260716"}, {"membership_start_date": "20260715"}),
    "SPRG-END-AFTER-START": ({"membership_end_date": "20250814"}, {"membership_end_date": "20250815"}),
    "SPRG-END-BEFORE-EXIT": ({"membership_end_date": "20260228", "ctx_enrollment_exit_date": "20260227"},
                             {"membership_end_date": "20260227", "ctx_enrollment_exit_date": "20260227"}),
    # end = birth = start: only "end after birth" is broken
    "SPRG-END-AFTER-BIRTH": ({"birth_date": "20250901", "membership_start_date": "20250901",
                              "membership_end_date": "20250901"},
                             {"birth_date": "20250901", "membership_start_date": "20250901",
                              "membership_end_date": "20250902"}),
    "SPRG-END-IN-YEAR": ({"membership_end_date": "20260701"}, {"membership_end_date": "20260630"}),
    "SPRG-SERVICE-122": ({**P122, "service_code": "04"}, {**P122, "service_code": "13"}),
    "SPRG-SERVICE-ONLY-122": ({"service_code": "08"}, {"program_code": "182"}),
    "SPRG-CPA-113": ({**P113, "cpa_id": None}, P113),
    "SPRG-CPA-ONLY-113": ({"cpa_id": "12345"}, {"program_code": "113", "membership_code": "3", "cpa_id": "12345"}),
    "SPRG-MIGRANT-135": ({**P135, "migrant_id": "0712345678"}, P135),
    "SPRG-MIGRANT-ONLY-135": ({"migrant_id": "0612345678"}, P135),
    "SPRG-SPED-ONLY-144": ({"dsea": "1964733"}, P144),
    "SPRG-HOMELESS-ONLY-191": ({"runaway_youth": "Y"}, P191),
    "SPRG-131-RESIDENCE": ({"program_code": "131", "membership_code": "3"},
                           {"program_code": "131", "membership_code": "3", "ctx_primary_residence_category": "110"}),
    # an eligible (1) membership need not lie inside an enrollment
    "SPRG-ENROLLED-OVER-RANGE": ({"program_code": "190", "membership_code": "3", "ctx_enrollment_covers_range": "N"},
                                 {"program_code": "181", "membership_code": "1", "ctx_enrollment_covers_range": "N"}),
    "SPRG-SCHOOL-OF-SERVICE": ({"ctx_enrolled_at_school": "N"}, {"ctx_enrolled_at_school": "Y"}),
    # an enrollment at the school whose date is unreadable: only this rule, not SPRG-SCHOOL-OF-SERVICE too
    "SPRG-ENROLLMENT-DATE": ({"ctx_enrollment_bad_date": "ENTRYDATE 'not a date'", "ctx_enrolled_at_school": "N"},
                             {"ctx_enrollment_bad_date": None}),
    # two records with one key (EXTRA_FAILING has the second): both held back; a start date one day later passes
    "SPRG-DUPLICATE-KEY": ({"ssid": DUPLICATE_SSID}, {"ssid": DUPLICATE_SSID, "membership_start_date": "20250816"}),
}

# Second failing variants for rules with two ways to break them.
EXTRA_FAILING: dict[str, list[dict[str, Any]]] = {
    "SPRG-SERVICE-122": [{**P122, "service_academic_year": "2024-2025"}, {**P122, "service_code": None}],
    "SPRG-MIGRANT-135": [{**P135, "migrant_id": None}],
    "SPRG-GENDER-X-LEGAL": [{"ctx_preferred_gender": "X", "ctx_legal_gender": "X", "gender_code": "X"}],
    "SPRG-DUPLICATE-KEY": [{"ssid": DUPLICATE_SSID}],
}


# --------------------------------------------------------------------------- tests
def all_cases() -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    """Every failing and passing record in one frame; ctx_program_id -> (kind, rule id)."""
    records, expected = [], {}
    n = 0
    for rule_id, (bad, good) in CASES.items():
        for kind, changes in [("fail", bad), ("pass", good), *(("fail", x) for x in EXTRA_FAILING.get(rule_id, []))]:
            n += 1
            rec = base_record(n, **changes)
            records.append(rec)
            expected[rec["ctx_program_id"]] = (kind, rule_id)
    return frame(records), expected


@pytest.fixture(scope="module")
def gated() -> tuple[GateResult, pd.DataFrame, dict[str, tuple[str, str]]]:
    records, expected = all_cases()
    return run_gate(records, "SPRG", RUN_DATE), records, expected


def repeated_cases(times: int, random_state: int) -> pd.DataFrame:
    """Every rule's failing and passing records ``times`` over (each copy with new Local Record IDs), shuffled:
    each value repeats, and records that share an operational key fall far apart."""
    cases, _ = all_cases()
    copies = []
    for k in range(times):
        c = cases.copy()
        c["local_record_id"] = c["local_record_id"].astype(str) + f"-{k}"
        copies.append(c)
    return pd.concat(copies, ignore_index=True).sample(frac=1.0, random_state=random_state).reset_index(drop=True)


def _fired(result: GateResult, records: pd.DataFrame, program_id: str) -> set[str]:
    pos = records.index[records["ctx_program_id"] == program_id]
    ids = records.loc[pos, "local_student_id"].tolist()      # unique per case record
    return set(result.findings.loc[result.findings["local_student_id"].isin(ids), "rule_id"])


def _suite_rules() -> dict[str, dict]:
    from calpads.quality.suite_builder import suite_path

    suite = json.loads(suite_path("SPRG").read_text())
    return {e["meta"]["rule_id"]: e for e in suite["expectations"]}


BRIEF_RULES = {
    "SPRG-GENDER-X-LEGAL", "SPRG-MEMBERSHIP-CODE", "SPRG-START-AFTER-BIRTH", "SPRG-START-NOT-FUTURE",
    "SPRG-END-AFTER-START", "SPRG-END-BEFORE-EXIT", "SPRG-END-AFTER-BIRTH", "SPRG-END-IN-YEAR", "SPRG-SERVICE-122",
    "SPRG-SERVICE-ONLY-122", "SPRG-CPA-113", "SPRG-CPA-ONLY-113", "SPRG-MIGRANT-135", "SPRG-MIGRANT-ONLY-135",
    "SPRG-SPED-ONLY-144", "SPRG-HOMELESS-ONLY-191", "SPRG-131-RESIDENCE", "SPRG-ENROLLED-OVER-RANGE",
    "SPRG-SCHOOL-OF-SERVICE",
}


def test_every_rule_of_the_suite_has_a_case_and_every_brief_rule_exists() -> None:
    rules = _suite_rules()
    assert BRIEF_RULES <= set(rules)
    assert set(rules) == set(CASES)
    for rule_id, e in rules.items():
        meta = e["meta"]
        assert {"rule_id", "severity", "field", "rule_text", "fix", "source"} <= set(meta), rule_id
        assert meta["severity"] == ("warning" if rule_id == "SPRG-131-RESIDENCE" else "error")


def test_service_code_set_is_left_to_the_business_rules() -> None:
    rules = _suite_rules()
    assert "SPRG.3.18.code_set" not in rules and "SPRG.3.17.format" not in rules


def test_base_record_alone_fires_nothing() -> None:
    result = run_gate(frame([base_record()]), "SPRG", RUN_DATE)
    assert result.findings.empty
    assert len(result.publishable) == 1 and result.held_back.empty
    assert result.summary["rules"] == {} and not result.ceiling_exceeded


@pytest.mark.parametrize("rule_id", list(CASES))
def test_failing_record_fires_exactly_its_rule(gated, rule_id: str) -> None:
    result, records, expected = gated
    severity = _suite_rules()[rule_id]["meta"]["severity"]
    held = set(result.held_back["ctx_program_id"])
    published = set(result.publishable["ctx_program_id"])
    failing = [pid for pid, (kind, rid) in expected.items() if rid == rule_id and kind == "fail"]
    assert failing
    for pid in failing:
        assert _fired(result, records, pid) == {rule_id}
        if severity == "error":
            assert pid in held and pid not in published
        else:
            assert pid in published and pid not in held


@pytest.mark.parametrize("rule_id", list(CASES))
def test_passing_record_fires_nothing(gated, rule_id: str) -> None:
    result, records, expected = gated
    (pid,) = [pid for pid, (kind, rid) in expected.items() if rid == rule_id and kind == "pass"]
    assert _fired(result, records, pid) == set()
    assert pid in set(result.publishable["ctx_program_id"])


def test_findings_and_summary_counts(gated) -> None:
    result, records, expected = gated
    fails = sum(1 for kind, _ in expected.values() if kind == "fail")
    warned = sum(1 for kind, rid in expected.values() if kind == "fail" and rid == "SPRG-131-RESIDENCE")
    s = result.summary
    assert len(result.findings) == fails
    assert s["records_checked"] == len(records)
    assert s["records_with_errors"] == s["records_held_back"] == fails - warned
    assert s["records_warned"] == warned
    assert len(result.publishable) + len(result.held_back) == len(records)
    assert s["rules"]["SPRG-SERVICE-122"]["count"] == 3
    assert s["rules"]["SPRG-131-RESIDENCE"]["severity"] == "warning"
    assert list(result.findings.columns) == ["local_record_id", "local_student_id", "school_of_attendance", "rule_id",
                                             "severity", "field", "column", "value", "rule_text", "fix"]


def test_pii_values_are_masked_in_findings(gated) -> None:
    result, _, _ = gated
    f = result.findings
    for rule_id in ("SPRG.3.09.format", "SPRG.3.10.length", "SPRG.3.11.format", "SPRG.3.07.format",
                    "SPRG-START-AFTER-BIRTH"):
        values = f.loc[f["rule_id"] == rule_id, "value"].tolist()
        assert values and all("(hidden)" in v for v in values), rule_id
    text = f.to_csv()
    for secret in (FIRST_NAME, LAST_NAME, BIRTH_DATE, SSID, "90817263", "20120431"):
        assert secret not in text
    start = f.loc[f["rule_id"] == "SPRG-START-AFTER-BIRTH", "value"].iloc[0]
    assert start == "membership_start_date=20120303; birth_date=(hidden)"
