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
    frame = pd.DataFrame(records)
    frame = frame[[*layout.columns, *(c for c in frame.columns if c.startswith("ctx_"))]]   # a builder's ctx_
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


# Each case: (failing record, a passing variant). Start date 2025-09-02 (senr()), run date 2026-06-20 (RUN_DATE).
EXIT = {"enrollment_exit_date": "20251017"}
GRAD = {**EXIT, "exit_reason": "E230", "completion_status": "100", "uc_csu_requirements": "Y", "grade_level": "12"}
SENR_CASES = {
    # exit date, no exit reason (the SIS has an EXITCODE column): held back
    "SENR-EXIT-REASON": (senr(**EXIT), senr(**EXIT, exit_reason="T160")),
    # the SIS has no EXITCODE column: the same record is published with a warning
    "SENR-EXIT-REASON-NOT-IN-SIS": ({**senr(**EXIT), "ctx_exit_codes_in_sis": "N"},
                                    {**senr(**EXIT, exit_reason="T160"), "ctx_exit_codes_in_sis": "N"}),
    "SENR.1.26.code_set": (senr(**EXIT, exit_reason="X999"), senr(**EXIT, exit_reason="E140")),
    "SENR.1.27.code_set": (senr(**{**GRAD, "completion_status": "101"}), senr(**{**GRAD, "completion_status": "120"})),
    # E230 without completion status; the UC/CSU indicator is for graduates (100) only, so blank is fine here
    "SENR-E230-COMPLETION": (senr(**{**GRAD, "completion_status": None, "uc_csu_requirements": None}), senr(**GRAD)),
    # completion status with a transfer exit (SENR0175: 100 needs E230)
    "SENR0022": (senr(**{**GRAD, "exit_reason": "T160"}), senr(**GRAD)),
    "SENR-UCCSU-GRADUATE": (senr(**{**GRAD, "uc_csu_requirements": None}),
                            senr(**{**GRAD, "uc_csu_requirements": "N"})),
    "SENR-T165-RECEIVER": (senr(**EXIT, exit_reason="T165"),
                           senr(**EXIT, exit_reason="T165", expected_receiver_school="2222222")),
    "SENR.1.28.format": (senr(**EXIT, exit_reason="T165", expected_receiver_school="22222"),
                         senr(**EXIT, exit_reason="T165", expected_receiver_school="2222222")),
    # a no-show is exited the day before (or on) its start date; any other exit on or after the start
    "SENR0018": (senr(enrollment_exit_date="20250829", exit_reason="N470"),
                 senr(enrollment_exit_date="20250901", exit_reason="N470")),
    "SENR-EXIT-AFTER-START": (senr(enrollment_exit_date="20250901", exit_reason="T160"),
                              senr(enrollment_exit_date="20250902", exit_reason="T160")),
    # secondary (20): exit reason E170 or none; non-ADA (50): E170, N470, E150 or none; E170 only for 20/50
    "SENR0302": (senr(**EXIT, enrollment_status="20", exit_reason="T160"),
                 senr(**EXIT, enrollment_status="20", exit_reason="E170")),
    "SENR0522": (senr(**EXIT, enrollment_status="50", exit_reason="T160"),
                 senr(**EXIT, enrollment_status="50", exit_reason="E150")),
    "SENR0523": (senr(**EXIT, exit_reason="E170"), senr(**EXIT, enrollment_status="50", exit_reason="E170")),
    "SENR.1.23.code_set": (senr(enrollment_status="40"), senr(enrollment_status="20")),
    # short-term (30): at most 30 days, start and exit (or the run's date while open) included.
    # Sep 2 - Oct 2 = 31 days; Sep 2 - Oct 1 = 30 days.
    "SENR0187": (senr(enrollment_status="30", enrollment_exit_date="20251002", exit_reason="T160"),
                 senr(enrollment_status="30", enrollment_exit_date="20251001", exit_reason="T160")),
}


@pytest.mark.parametrize("rule_id", sorted(SENR_CASES))
def test_senr_violation_fires_exactly_its_rule_and_the_fixed_record_nothing(rule_id):
    failing, passing = SENR_CASES[rule_id]
    assert fired("SENR", [failing]) == {rule_id}
    assert fired("SENR", [passing]) == set()


def test_senr_exit_reason_warning_publishes_and_error_holds_back():
    layout = load_layout("SENR")
    with_codes, without = senr(**EXIT), {**senr(**EXIT), "ctx_exit_codes_in_sis": "N"}
    frame = pd.DataFrame([with_codes, without])[[*layout.columns, "ctx_exit_codes_in_sis"]]
    frame.loc[0, "ctx_exit_codes_in_sis"] = "Y"
    result = run_gate(frame, "SENR", RUN_DATE, error_ceiling=1.0)
    assert len(result.held_back) == 1 and len(result.publishable) == 1
    assert result.summary["rules"]["SENR-EXIT-REASON"]["severity"] == "error"
    assert result.summary["rules"]["SENR-EXIT-REASON-NOT-IN-SIS"]["severity"] == "warning"


def test_open_short_term_enrollment_counts_to_the_run_date():
    # open since Sep 2, 2025: on the run date 2026-06-20 far more than 30 days
    assert fired("SENR", [senr(enrollment_status="30")]) == {"SENR0187"}
    layout = load_layout("SENR")
    frame = pd.DataFrame([senr(enrollment_status="30")])[layout.columns]
    # run on Oct 1, 2025: Sep 2 - Oct 1 = 30 days (passes); on Oct 2: 31 days
    assert set(run_gate(frame, "SENR", date(2025, 10, 1), error_ceiling=1.0).findings["rule_id"]) == set()
    assert set(run_gate(frame, "SENR", date(2025, 10, 2), error_ceiling=1.0).findings["rule_id"]) == {"SENR0187"}


def leap(days: str) -> dict:
    return {**STUDENT, "record_type": "LEAP", "transaction_type": None, "local_record_id": "1.194",
            "elp_days": days, "lea_program_code": "194"}


def test_leap_days_range():
    assert fired("LEAP", [leap("0"), leap("300")]) == set()
    assert fired("LEAP", [leap("301")]) == {"LEAP-DAYS-RANGE"}
    assert fired("LEAP", [{**leap("3"), "lea_program_code": "195"}]) == {"LEAP.26.08.code_set"}
