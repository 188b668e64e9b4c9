"""The afterschool platform's CSV exports (contracts README §1, "afterschool" source).

``attendance.csv``:    student_number,ssid,school_code,session_date,minutes,program
``registrations.csv``: student_number,ssid,program,registration_date

Where they are: the Airflow Variable ``afterschool_attendance_path`` (the attendance file;
``afterschool_registrations_path`` for the registrations, default: ``registrations.csv``
beside it), else the demo's export folder (``$DEMO_DIR/afterschool``, default
``<project>/demo_out/afterschool``, where ``scripts/demo.sh`` writes them). Rows that break
the contract (unknown program, minutes not a positive integer, a date that is not
YYYY-MM-DD) are returned apart, never silently dropped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

ATTENDANCE_COLUMNS = ["student_number", "ssid", "school_code", "session_date", "minutes", "program"]
REGISTRATION_COLUMNS = ["student_number", "ssid", "program", "registration_date"]
PROGRAMS = ("ELO-P", "ASES", "21CCLC", "AR")
EXPANDED_LEARNING = ("ELO-P", "ASES", "21CCLC")
ATTENDANCE_RECOVERY = "AR"
PROJECT_ROOT = Path(__file__).resolve().parents[3]


class AfterschoolDataError(RuntimeError):
    """The export is missing or not in the contract's shape (the message names the file, never a student)."""


@dataclass
class AfterschoolExport:
    sessions: pd.DataFrame        # ATTENDANCE_COLUMNS + session_day (datetime64) + minutes as int
    registrations: pd.DataFrame   # REGISTRATION_COLUMNS + registration_day
    rejected: pd.DataFrame        # student_number, file, reason


def _variable(name: str) -> str | None:
    """An Airflow Variable when running inside a task; None elsewhere (tests, the demo CLI)."""
    env = os.environ.get(f"AIRFLOW_VAR_{name.upper()}")
    if env:
        return env
    try:
        from airflow.sdk import Variable

        return Variable.get(name, default=None)
    except Exception:  # no task context (SUPERVISOR_COMMS) or no Airflow: fall back to the default
        return None


def default_paths() -> tuple[Path, Path]:
    """(attendance.csv, registrations.csv) as configured; see the module docstring."""
    att = _variable("afterschool_attendance_path")
    reg = _variable("afterschool_registrations_path")
    demo = Path(os.environ.get("DEMO_DIR") or PROJECT_ROOT / "demo_out") / "afterschool"
    att_path = Path(att.removeprefix("file://")) if att else demo / "attendance.csv"
    reg_path = Path(reg.removeprefix("file://")) if reg else att_path.with_name("registrations.csv")
    return att_path, reg_path


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise AfterschoolDataError(f"afterschool export not found: {path} (set the Airflow Variable "
                                   "afterschool_attendance_path, or run the demo generator with --afterschool-dir)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AfterschoolDataError(f"{path.name} lacks the contract columns {', '.join(missing)}")
    df = df[columns].apply(lambda col: col.str.strip())
    return df.astype("object").where(df.ne(""), None)


def _rejected(rows: pd.DataFrame, file: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"student_number": rows["student_number"].astype(str), "file": file, "reason": reason})


def read_export(attendance_path: Path, registrations_path: Path, first: date, last: date) -> AfterschoolExport:
    """Both files; sessions dated outside [first, last] are left out (another reporting year)."""
    att = _read(attendance_path, ATTENDANCE_COLUMNS)
    reg = _read(registrations_path, REGISTRATION_COLUMNS)
    rejected = []
    att["session_day"] = pd.to_datetime(att["session_date"], format="%Y-%m-%d", errors="coerce")
    minutes = pd.to_numeric(att["minutes"], errors="coerce")
    bad = att["session_day"].isna() | ~(minutes > 0) | (minutes % 1 != 0) | ~att["program"].isin(PROGRAMS) \
        | att["student_number"].isna()
    rejected.append(_rejected(att[bad], attendance_path.name, "session row not in the contract's format"))
    att = att[~bad].assign(minutes=minutes[~bad].astype("int64"))
    att = att[(att["session_day"] >= pd.Timestamp(first)) & (att["session_day"] <= pd.Timestamp(last))]
    reg["registration_day"] = pd.to_datetime(reg["registration_date"], format="%Y-%m-%d", errors="coerce")
    bad = reg["registration_day"].isna() | ~reg["program"].isin(EXPANDED_LEARNING) | reg["student_number"].isna()
    rejected.append(_rejected(reg[bad], registrations_path.name, "registration row not in the contract's format"))
    reg = reg[~bad]
    out = AfterschoolExport(att.reset_index(drop=True), reg.reset_index(drop=True),
                            pd.concat(rejected, ignore_index=True))
    log.info("afterschool export: %d sessions, %d registrations in range, %d rows rejected",
             len(out.sessions), len(out.registrations), len(out.rejected))
    return out
