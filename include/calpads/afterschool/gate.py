"""The afterschool import gates: the GX suites great_expectations/expectations/afterschool_attendance.json
(sessions) and afterschool_registrations.json (expanded-learning registrations).

This module only adds the ``ctx_`` columns GX cannot derive (does the SIS know the
student, does the SSID match, is the date real and in the year, is the site a school,
is the row a duplicate) and turns GX's answer into accepted rows, held-back rows and
findings, reusing the SPRG gate's machinery (calpads.quality.gate). A flag is None
where its input is blank, so a blank value fires only its ``required`` rule.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from calpads.afterschool import ATTENDANCE_COLUMNS, REGISTRATION_COLUMNS
from calpads.afterschool.sis_data import SisSnapshot
from calpads.quality import gate as core

RECORD_TYPE = "AFTERSCHOOL_ATTENDANCE"
REGISTRATION_RECORD_TYPE = "AFTERSCHOOL_REGISTRATIONS"
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass
class AfterschoolGateResult:
    accepted: pd.DataFrame      # the export's rows that pass, + student_id (and schoolid for sessions: SIS keys)
    held_back: pd.DataFrame     # rows with an error finding, + rule_ids (comma-separated)
    findings: pd.DataFrame      # line, local_student_id, school, rule_id, severity, column, value, rule_text, fix
    summary: dict[str, Any]


def _flag(ok: pd.Series, applies: pd.Series) -> np.ndarray:
    return np.where(applies.to_numpy(dtype=bool), np.where(ok.to_numpy(dtype=bool), "Y", "N"), None).astype(object)


def validation_frame(rows: pd.DataFrame, sis: SisSnapshot, year_start: date, last_day: date) -> pd.DataFrame:
    f = pd.DataFrame({c: rows[c].astype("object").where(rows[c].notna(), None) for c in ATTENDANCE_COLUMNS},
                     index=pd.RangeIndex(len(rows)))
    f["local_record_id"] = rows["line"].astype(str).to_numpy()
    f["local_student_id"] = f["student_number"]
    f["school_of_attendance"] = f["school_code"]

    _known_ssid(f, sis)

    text = f["session_date"].fillna("")
    parsed = pd.to_datetime(text.where(text.str.match(DATE_RE), None), format="%Y-%m-%d", errors="coerce")
    f["ctx_date_valid"] = _flag(parsed.notna(), f["session_date"].notna())
    in_year = (parsed >= pd.Timestamp(year_start)) & (parsed <= pd.Timestamp(last_day))
    f["ctx_date_in_year"] = _flag(in_year, parsed.notna())
    f["ctx_site_known"] = _flag(f["school_code"].isin(set(sis.schools["school_code"])), f["school_code"].notna())

    key_cols = ["student_number", "session_date", "program"]
    has_key = f[key_cols].notna().all(axis=1)
    exact_repeat = f.duplicated(list(ATTENDANCE_COLUMNS), keep="first")
    unique_rows = f[list(ATTENDANCE_COLUMNS)].drop_duplicates()
    versions = unique_rows.groupby(key_cols, dropna=False).size()
    conflicting = pd.MultiIndex.from_frame(f[key_cols]).isin(versions[versions > 1].index)
    f["ctx_duplicate"] = _flag(~(exact_repeat | conflicting), has_key)
    # _flag gives Y for "ok": this rule expects N (= not a duplicate)
    f["ctx_duplicate"] = f["ctx_duplicate"].map({"Y": "N", "N": "Y", None: None})
    f[core.ROW] = np.arange(len(f), dtype="int64")
    return f


def _known_ssid(f: pd.DataFrame, sis: SisSnapshot) -> None:
    """ctx_known_student and ctx_ssid_matches (None where the input is blank)."""
    by_number = sis.students.dropna(subset=["student_number"]).drop_duplicates("student_number")
    ssid_of = dict(zip(by_number["student_number"], by_number["ssid"], strict=True))
    number = f["student_number"]
    known = number.isin(ssid_of.keys())
    f["ctx_known_student"] = _flag(known, number.notna())
    f["ctx_ssid_matches"] = _flag(number.map(ssid_of).astype("object") == f["ssid"], f["ssid"].notna() & known)


def registration_frame(rows: pd.DataFrame, sis: SisSnapshot, year_end: date) -> pd.DataFrame:
    f = pd.DataFrame({c: rows[c].astype("object").where(rows[c].notna(), None) for c in REGISTRATION_COLUMNS},
                     index=pd.RangeIndex(len(rows)))
    f["local_record_id"] = rows["line"].astype(str).to_numpy()
    f["local_student_id"] = f["student_number"]
    f["school_of_attendance"] = None
    _known_ssid(f, sis)
    text = f["registration_date"].fillna("")
    parsed = pd.to_datetime(text.where(text.str.match(DATE_RE), None), format="%Y-%m-%d", errors="coerce")
    f["ctx_date_valid"] = _flag(parsed.notna() & (parsed <= pd.Timestamp(year_end)), f["registration_date"].notna())
    f[core.ROW] = np.arange(len(f), dtype="int64")
    return f


def _validate(record_type: str, frame: pd.DataFrame, context_root: Any) -> tuple[np.ndarray, pd.DataFrame, int]:
    """(held-back mask, findings, rules checked) of one suite on a frame with ctx_ columns."""
    suite = core.gx_suite(record_type, context_root)
    used = core.suite_columns(suite)
    batch = core._batch(record_type, frame[[c for c in frame.columns if c in used or c == core.ROW]], context_root)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
        result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                      "unexpected_index_column_names": [core.ROW],
                                                      "return_unexpected_index_query": False})
    broken = [r.expectation_config.meta.get("rule_id") for r in result.results if core._raised(r.exception_info)]
    if broken:
        raise core.GateError(f"afterschool rules could not run: {', '.join(map(str, broken))}")
    findings = core._findings(result, frame, ("ssid",))
    bad = np.zeros(len(frame), dtype=bool)
    bad[findings.loc[findings["severity"] == "error", "_row"].to_numpy(dtype="int64")] = True
    return bad, findings, len(result.results)


def _rules(findings: pd.DataFrame) -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for rule_id, grp in findings.groupby("rule_id", sort=True):
        first = grp.iloc[0]
        rules[str(rule_id)] = {"count": int(len(grp)), "severity": str(first["severity"]),
                               "rule_text": first["rule_text"], "fix": first["fix"]}
    return rules


def rule_ids_per_row(findings: pd.DataFrame, n: int) -> list[str | None]:
    """The error rules each row broke, comma-separated (None = none)."""
    out: list[str | None] = [None] * n
    errors = findings[findings["severity"] == "error"]
    for row, grp in errors.groupby("_row", sort=False):
        out[int(row)] = ",".join(sorted(set(grp["rule_id"].astype(str))))
    return out


def _student_ids(numbers: pd.Series, sis: SisSnapshot) -> pd.Series:
    stu = sis.students.dropna(subset=["student_number"]).drop_duplicates("student_number")
    return numbers.map(dict(zip(stu["student_number"], stu["student_id"], strict=True))).astype("Int64")


def run_registration_gate(rows: pd.DataFrame, sis: SisSnapshot, *, year_end: date,
                          context_root: Any = None) -> AfterschoolGateResult:
    """The registrations export: held back when the SIS does not know the student, the SSID differs, the date is
    not a date of the year (or before), or the program is not an expanded-learning program."""
    rows = rows.reset_index(drop=True)
    return _gate(REGISTRATION_RECORD_TYPE, rows, registration_frame(rows, sis, year_end), sis, context_root)


def run_afterschool_gate(rows: pd.DataFrame, sis: SisSnapshot, *, year_start: date, last_day: date,
                         context_root: Any = None) -> AfterschoolGateResult:
    rows = rows.reset_index(drop=True)
    result = _gate(RECORD_TYPE, rows, validation_frame(rows, sis, year_start, last_day), sis, context_root)
    accepted = result.accepted
    accepted["schoolid"] = accepted["school_code"].map(dict(zip(sis.schools["school_code"],
                                                                sis.schools["school_number"], strict=True)))
    accepted["schoolid"] = accepted["schoolid"].astype("Int64")
    accepted["minutes"] = accepted["minutes"].astype(int)
    return result


def _gate(record_type: str, rows: pd.DataFrame, frame: pd.DataFrame, sis: SisSnapshot,
          context_root: Any) -> AfterschoolGateResult:
    """One export file through its suite: the accepted rows (with the SIS STUDENTS.ID), the held-back rows with
    the rules each broke, the findings and the summary."""
    bad, findings, checked = _validate(record_type, frame, context_root)
    held = rows[bad].assign(rule_ids=[r for r, b in zip(rule_ids_per_row(findings, len(rows)), bad, strict=True)
                                      if b])
    findings = findings.drop(columns="_row").rename(columns={"local_record_id": "line",
                                                            "school_of_attendance": "school_code"})
    accepted = rows[~bad].copy()
    accepted["student_id"] = _student_ids(accepted["student_number"], sis)
    summary = {"rows": int(len(rows)), "accepted": int((~bad).sum()), "held_back": int(bad.sum()),
               "rules_checked": checked, "rules": _rules(findings)}
    return AfterschoolGateResult(accepted.reset_index(drop=True), held.reset_index(drop=True), findings, summary)
