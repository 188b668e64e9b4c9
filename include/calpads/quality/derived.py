"""ctx_ columns the SENR / STAS / LEAP business rules read (added by the gate before validating).

Like calpads.quality.gate.derived_columns, nothing is decided here: the values are typed or summed
so that one GX expectation can state each rule. A value that is blank or not a number becomes NaN/NaT,
the pair rules skip it (ignore_row_if either_value_is_missing), and the field's own format rule
reports it alone. Computed from the published fields (not from the builder's counts), so a wrong
field value in the file is what fails.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from calpads.dates import calpads_dates

STAS_PARTS = ["days_attended_in_person", "days_absent_oss", "days_iss", "days_absent_excused",
              "days_absent_unexcused", "days_is_non_ada", "days_is_ada"]           # 13.16 .. 13.22


def _num(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.astype("object").where(values.notna(), None), errors="coerce").astype("float64")


_dates = calpads_dates


def layout_columns(frame: pd.DataFrame, run_date: date | None = None) -> dict[str, pd.Series]:
    cols: dict[str, pd.Series] = {}
    if {"expected_attendance_days", *STAS_PARTS} <= set(frame.columns):
        expected = _num(frame["expected_attendance_days"])
        parts = pd.DataFrame({c: _num(frame[c]) for c in STAS_PARTS})
        cols["ctx_stas_expected"] = expected.round(2)
        cols["ctx_stas_parts_sum"] = parts.sum(axis=1, skipna=False).round(2)                 # STAS0318
        cols["ctx_stas_non_ada_is"] = parts["days_is_non_ada"]
        cols["ctx_stas_0311_limit"] = (expected - parts["days_attended_in_person"] - parts["days_iss"]).round(2)
    if {"attendance_recovery_days", "days_absent_oss", "days_absent_excused", "days_absent_unexcused",
            "ssid"} <= set(frame.columns):
        ar = _num(frame["attendance_recovery_days"])
        cols["ctx_ar_days"] = ar
        cols["ctx_ar_absences"] = (_num(frame["days_absent_oss"]) + _num(frame["days_absent_excused"])
                                   + _num(frame["days_absent_unexcused"]))
        # STAS0740E1: 13.24 summed over the LEA's schools for one SSID (blank SSIDs are not summed together)
        total = ar.fillna(0).groupby(frame["ssid"].astype("object").fillna("")).transform("sum")
        cols["ctx_ar_lea_total"] = total.where(frame["ssid"].notna(), ar.fillna(0))
    if {"enrollment_start_date", "enrollment_exit_date"} <= set(frame.columns):
        start, exit_ = _dates(frame["enrollment_start_date"]), _dates(frame["enrollment_exit_date"])
        cols["ctx_enr_start_dt"] = start
        cols["ctx_enr_exit_dt"] = exit_
        cols["ctx_enr_exit_minus_start"] = (exit_ - start).dt.days.astype("float64")            # SENR0018 (N470)
        if "ctx_exit_codes_in_sis" not in frame:
            # SENR records not made by calpads.extracts.senr (which says per record whether the SIS had an
            # EXITCODE column): a missing exit reason is then an error (SENR-EXIT-REASON), not a warning.
            cols["ctx_exit_codes_in_sis"] = pd.Series("Y", index=frame.index, dtype="object")
        if run_date is not None:
            # SENR0187: calendar days from the start date to the exit date, or to the run's date while open,
            # both days included
            until = exit_.fillna(pd.Timestamp(run_date)).where(frame["enrollment_exit_date"].isna() | exit_.notna())
            cols["ctx_enr_period_days"] = ((until - start).dt.days + 1).astype("float64")
    return cols
