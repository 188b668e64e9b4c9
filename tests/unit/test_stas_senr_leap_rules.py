"""The SENR / STAS / LEAP business rules: a planted violation fires exactly its rule; the clean record nothing."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from calpads.layouts import load_layout
from calpads.quality.gate import run_gate

RUN_DATE = date(2026, 6, 20)
STUDENT = {"local_student_id": "100001", "ssid": "1000000001", "legal_first_name": "Ana", "legal_last_name": "Avila",
           "birth_date": "20150314", "gender_code": "F", "reporting_lea": "1234567", "academic_year_id": "2025-2026"}


def stas(**fields: str) -> dict:
    # 21 expected = 16 in person + 1 OSS + 1 ISS + 1 excused + 1 unexcused + 1 non-ADA IS + 0 ADA IS
    base = {**STUDENT, "record_type": "STAS", "transaction_type": None, "local_record_id": "1.100",
            "school_of_attendance": "1111111", "exemption_indicator": "N", "hourly_attendance_indicator": "N",
            "expected_attendance_days": "21", "days_attended_in_person": "16", "days_absent_oss": "1",
            "days_iss": "1", "days_absent_excused": "1", "days_absent_unexcused": "1", "days_is_non_ada": "1",
            "days_is_ada": "0", "period_attendance_indicator": "N", "attendance_recovery_days": "2"}
    return {**base, **fields}


def fired(record_type: str, records: list[dict]) -> set[str]:
    layout = load_layout(record_type)
    frame = pd.DataFrame(records)[layout.columns]
    result = run_gate(frame, record_type, RUN_DATE, error_ceiling=1.0)
    return set(result.findings["rule_id"])


STAS_CASES = {
    # 16 + ... = 21 but 13.15 says 22
    "STAS0318": [stas(expected_attendance_days="22")],
    # When 13.16-13.22 add up to 13.15, 13.21 <= 13.15 - (13.16 + 13.18) always holds: STAS0311 can only fail
    # together with STAS0318. 13.15 = 10, 13.16 = 5, 13.18 = 1, 13.21 = 6 > 10 - 6 = 4 (and 5 + 1 + 6 = 12 != 10).
    "STAS0311": [stas(expected_attendance_days="10", days_attended_in_person="5", days_absent_oss="0", days_iss="1",
                      days_absent_excused="0", days_absent_unexcused="0", days_is_non_ada="6",
                      attendance_recovery_days="0")],
    "STAS0739": [stas(attendance_recovery_days="1.5")],
    # two schools, 6 + 6 = 12 AR days for one SSID (each record has enough absences)
    "STAS0740E1": [stas(days_attended_in_person="9", days_absent_unexcused="8", attendance_recovery_days="6"),
                   stas(local_record_id="1.200", school_of_attendance="2222222", days_attended_in_person="9",
                        days_absent_unexcused="8", attendance_recovery_days="6")],
    # 3 AR days, absences 13.17 + 13.19 + 13.20 = 1 + 1 + 0 = 2 (sum kept: 17 in person)
    "STAS-AR-ABSENCES": [stas(days_attended_in_person="17", days_absent_unexcused="0", attendance_recovery_days="3")],
}


@pytest.mark.parametrize("rule_id", sorted(STAS_CASES))
def test_stas_violation_fires_exactly_its_rule(rule_id):
    expected = {rule_id} if rule_id != "STAS0311" else {"STAS0311", "STAS0318"}
    assert fired("STAS", STAS_CASES[rule_id]) == expected


def test_clean_stas_records_fire_nothing():
    assert fired("STAS", [stas(), stas(local_record_id="1.200", school_of_attendance="2222222",
                                       attendance_recovery_days="")]) == set()


def senr(**fields: str) -> dict:
    layout = load_layout("SENR")
    base = dict.fromkeys(layout.columns)
    base.update({**STUDENT, "record_type": "SENR", "local_record_id": "1.100.20250902",
                 "school_of_attendance": "1111111", "enrollment_start_date": "20250902", "enrollment_status": "10",
                 "grade_level": "04"})
    return {**base, **fields}


def test_senr_rules():
    assert fired("SENR", [senr()]) == set()
    assert fired("SENR", [senr(enrollment_exit_date="20250901", exit_reason="T160")]) == {"SENR-EXIT-AFTER-START"}
    assert fired("SENR", [senr(enrollment_exit_date="20250912")]) == {"SENR-EXIT-REASON"}
    assert fired("SENR", [senr(grade_level="13")]) == {"SENR.1.24.code_set"}


def leap(days: str) -> dict:
    return {**STUDENT, "record_type": "LEAP", "transaction_type": None, "local_record_id": "1.194",
            "elp_days": days, "lea_program_code": "194"}


def test_leap_days_range():
    assert fired("LEAP", [leap("0"), leap("300")]) == set()
    assert fired("LEAP", [leap("301")]) == {"LEAP-DAYS-RANGE"}
    assert fired("LEAP", [{**leap("3"), "lea_program_code": "195"}]) == {"LEAP.26.08.code_set"}
