"""Layouts as data: every layout has a builder, an in-sync suite (and GX asset) and an in-sync docs page;
the enrollment logic is one function for SPRG and SENR/STAS; STAS 13.24 uses the afterschool module's AR model."""

from __future__ import annotations

import pandas as pd

from calpads.extracts import registry
from calpads.layouts import available_layouts, load_layout
from calpads.layouts import docs as layout_docs
from calpads.quality import suite_builder


def test_every_layout_has_a_builder_and_the_expected_shape():
    assert set(available_layouts()) >= {"SPRG", "SENR", "STAS", "LEAP"}
    shapes = {rt: (len(load_layout(rt).fields), load_layout(rt).processing, load_layout(rt).level)
              for rt in ("SENR", "STAS", "LEAP")}
    assert shapes == {"SENR": (35, "transaction", "school"), "STAS": (24, "replacement", "school"),
                      "LEAP": (13, "replacement", "lea")}
    for rt in available_layouts():
        assert callable(registry.builder(rt)), rt


def test_suites_and_gx_assets_are_in_sync_with_the_layouts():
    assert suite_builder.main(["--check"]) == 0


def test_layout_docs_are_in_sync_and_mark_unconfirmed_fields():
    assert layout_docs.main(["--check"]) == 0
    text = layout_docs.DOC_PATH.read_text()
    unconfirmed = sum(1 for rt in available_layouts() for f in load_layout(rt).fields if not f.confirmed)
    assert text.count("| **UNCONFIRMED** |") == unconfirmed


def test_sprg_and_senr_share_one_enrollment_function():
    from calpads.extracts import enrollment, sprg

    assert sprg.enrollment_last_days is enrollment.enrollment_last_days
    assert sprg.in_report_range is enrollment.in_report_range


def test_stas_ar_days_agree_with_the_afterschool_recovery_model():
    from calpads.afterschool.recovery import recovered_days
    from calpads.extracts.stas import attendance_recovery_days

    # Grade 2 (230 min/day, hourly increments): 240 -> 230, 230 -> 180, 120, 500 -> 230, 60, 60:
    # 230 + 180 + 120 + 230 + 60 + 60 = 880 min -> 3 days (690); 12 recoverable absences: no cap.
    days = pd.to_datetime(["2025-09-06", "2025-09-13", "2025-09-20", "2025-09-27", "2025-10-04", "2025-10-11"])
    minutes = [240, 230, 120, 500, 60, 60]
    sessions = pd.DataFrame({"student_number": "100001", "session_day": days, "minutes": minutes})
    per = pd.DataFrame({"student_id": [1], "schoolid": [100], "first": pd.to_datetime(["2025-09-02"]),
                        "days_absent_excused": [6], "days_absent_unexcused": [6]})
    enr = pd.DataFrame({"student_id": [1], "schoolid": [100], "entry": pd.to_datetime(["2025-09-02"]),
                        "grade_level": [2]})
    students = pd.DataFrame({"student_id": [1], "student_number": ["100001"]})
    mine, unmatched = attendance_recovery_days(sessions, per, enr, students)
    theirs = recovered_days(pd.DataFrame({"student_id": 1, "session_date": days.strftime("%Y-%m-%d"),
                                          "minutes": minutes}),
                            pd.DataFrame({"student_id": [1] * 12, "date": pd.date_range("2025-09-02", periods=12),
                                          "recoverable": True}),
                            pd.DataFrame({"student_id": [1], "grade_level": [2]}))
    assert mine["ar_days"].tolist() == [3] == theirs["recovered_days"].tolist()
    assert unmatched.empty
