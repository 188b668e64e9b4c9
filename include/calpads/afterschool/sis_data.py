"""What the afterschool work reads from the SIS, over SQL (``sis_db``) or the PowerSchool API.

Both readers return the same frames (``SisSnapshot``), so the gate, the reconciliation,
the write-back plan and attendance recovery never know which source fed them. SQL:
SQLAlchemy Core, bound parameters, dates cast to text in SQL (as calpads.sources.sql_sis).
API: the PowerSchool plugin's table endpoints, paged and checkpointed in the work folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from calpads.afterschool import PARTICIPATION_TABLE
from calpads.dates import iso_dates

NON_RECOVERABLE_CATEGORIES = ("OUT_OF_SCHOOL_SUSPENSION", "IN_SCHOOL_SUSPENSION")
PARTICIPATION_COLUMNS = ("id", "studentid", "schoolid", "participation_date", "minutes", "program",
                         "source_row_hash")

# table -> (columns, date columns)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "prefs": (("id", "name", "value", "schoolid"), ()),
    "schools": (("id", "school_number", "alternate_school_number", "state_excludefromreporting"), ()),
    "students": (("id", "student_number", "state_studentnumber", "grade_level", "schoolid", "entrydate", "exitdate",
                  "state_excludefromreporting"), ("entrydate", "exitdate")),
    "reenrollments": (("id", "studentid", "schoolid", "grade_level", "entrydate", "exitdate"),
                      ("entrydate", "exitdate")),
    "calendar_day": (("id", "schoolid", "date_value", "insession"), ("date_value",)),
    "attendance_code": (("id", "schoolid", "att_code", "description", "presence_status_cd", "calpads_category"), ()),
    "attendance": (("id", "studentid", "schoolid", "att_date", "attendance_codeid", "att_mode_code"), ("att_date",)),
}


class SisReadError(RuntimeError):
    """The SIS could not give the afterschool work what it needs (in the coordinator's words)."""


@dataclass
class SisSnapshot:
    """The SIS rows the afterschool work needs, typed the same way whatever the source."""

    lea: str
    students: pd.DataFrame        # student_id, student_number, ssid, grade_level
    schools: pd.DataFrame         # school_number, school_code
    enrollments: pd.DataFrame     # student_id, schoolid, grade_level, entrydate, exitdate (exclusive; NaT = open)
    calendar: pd.DataFrame        # schoolid, date (in-session days)
    absences: pd.DataFrame        # student_id, schoolid, date, category, recoverable (bool)
    participation: pd.DataFrame   # PARTICIPATION_COLUMNS (None = the table does not exist yet)
    participation_exists: bool


# --------------------------------------------------------------------------- raw readers
class SqlReader:
    def __init__(self, engine: sa.Engine, participation_table: str = PARTICIPATION_TABLE):
        self.engine = engine
        self.participation_table = participation_table.lower()

    def read(self, table: str, columns: tuple[str, ...], dates: tuple[str, ...] = (),
             between: tuple[str, str, str] | None = None) -> pd.DataFrame:
        t = sa.table(table, *(sa.column(c) for c in columns))
        cols = [sa.cast(t.c[c], sa.String(10)).label(c) if c in dates else t.c[c] for c in columns]
        q = sa.select(*cols)
        if between is not None:
            col, lo, hi = between
            q = q.where(t.c[col] >= lo, t.c[col] <= hi)
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def has_table(self, table: str) -> bool:
        names = {n.lower() for n in sa.inspect(self.engine).get_table_names()}
        return table.lower() in names

    @property
    def actor(self) -> str:
        return self.engine.url.username or f"{self.engine.url.get_backend_name()} (no login)"


class PowerSchoolReader:
    """Reads through the PowerSchool plugin API (calpads.sources.powerschool_api)."""

    def __init__(self, client: Any, work_dir: Path, participation_table: str = PARTICIPATION_TABLE):
        self.client = client
        self.work_dir = Path(work_dir)
        self.participation_table = participation_table.lower()

    def read(self, table: str, columns: tuple[str, ...], dates: tuple[str, ...] = (),
             between: tuple[str, str, str] | None = None) -> pd.DataFrame:
        import shutil
        import tempfile

        q = f"{between[0]}=ge={between[1]};{between[0]}=le={between[2]}" if between else None
        if table.lower() != self.participation_table:
            rows = self.client.fetch_table(table, list(columns), self.work_dir, q=q)
            return pd.DataFrame(rows, columns=list(columns))
        # The pipeline itself changes this table: never reuse checkpointed pages of it.
        fresh = Path(tempfile.mkdtemp(prefix="calpads-participation-"))
        try:
            rows = self.client.fetch_table(table, list(columns), fresh, q=q)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        return pd.DataFrame(rows, columns=list(columns))

    def has_table(self, table: str) -> bool:
        from calpads.sources.api_common import AccessDenied, ApiSourceError

        try:
            self.client.table_count(table)
        except AccessDenied:
            return True     # it exists; whether we may read it is the data-flow check's business
        except ApiSourceError:
            return False
        return True

    @property
    def actor(self) -> str:
        return f"PowerSchool plugin {self.client.settings.client_id}"


# --------------------------------------------------------------------------- typing helpers
def _int(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype("Int64")


_date = iso_dates


def _str(s: pd.Series) -> pd.Series:
    out = s.astype("object").where(s.notna(), None)
    return out.map(lambda v: None if v is None or str(v).strip() == "" else str(v).strip())


def read_snapshot(reader: SqlReader | PowerSchoolReader, year_start: date, year_end: date) -> SisSnapshot:
    """Everything dated (enrollments, calendar, attendance, participation) is limited to year_start..year_end."""
    lo, hi = year_start.isoformat(), year_end.isoformat()
    prefs = reader.read("prefs", TABLES["prefs"][0])
    lea_rows = prefs[(prefs["name"].astype(str) == "districtnumber") & (_int(prefs["schoolid"]) == 0)]
    if lea_rows.empty or not str(lea_rows["value"].iloc[0] or "").strip():
        raise SisReadError("The SIS has no district number (PREFS 'districtnumber'): enter the 7-digit Reporting "
                           "LEA code on PowerSchool's District Info page.")
    lea = str(lea_rows["value"].iloc[0]).strip()

    sch = reader.read("schools", TABLES["schools"][0])
    schools = pd.DataFrame({"school_number": _int(sch["school_number"]),
                            "school_code": _str(sch["alternate_school_number"])})
    schools = schools[schools["school_code"].notna()].reset_index(drop=True)

    stu = reader.read("students", *TABLES["students"])
    students = pd.DataFrame({
        "student_id": _int(stu["id"]), "student_number": _str(stu["student_number"]),
        "ssid": _str(stu["state_studentnumber"]), "grade_level": _int(stu["grade_level"]),
    })
    re_ = reader.read("reenrollments", *TABLES["reenrollments"])
    enrollments = pd.concat([
        pd.DataFrame({"student_id": _int(stu["id"]), "schoolid": _int(stu["schoolid"]),
                      "grade_level": _int(stu["grade_level"]),
                      "entrydate": _date(stu["entrydate"]), "exitdate": _date(stu["exitdate"])}),
        pd.DataFrame({"student_id": _int(re_["studentid"]), "schoolid": _int(re_["schoolid"]),
                      "grade_level": _int(re_["grade_level"]),
                      "entrydate": _date(re_["entrydate"]), "exitdate": _date(re_["exitdate"])}),
    ], ignore_index=True)
    y0, y1 = pd.Timestamp(year_start), pd.Timestamp(year_end)
    overlaps = (enrollments["entrydate"] <= y1) & (enrollments["exitdate"].isna() | (enrollments["exitdate"] > y0))
    enrollments = enrollments[overlaps & enrollments["student_id"].notna()].reset_index(drop=True)

    cal = reader.read("calendar_day", *TABLES["calendar_day"], between=("date_value", lo, hi))
    cal = cal[_int(cal["insession"]) == 1]
    calendar = pd.DataFrame({"schoolid": _int(cal["schoolid"]), "date": _date(cal["date_value"])}).dropna()

    codes = reader.read("attendance_code", TABLES["attendance_code"][0])
    att = reader.read("attendance", *TABLES["attendance"], between=("att_date", lo, hi))
    codes = pd.DataFrame({"attendance_codeid": _int(codes["id"]),
                          "presence": _str(codes["presence_status_cd"]),
                          "category": _str(codes["calpads_category"]),
                          "description": _str(codes["description"])})
    att = pd.DataFrame({"student_id": _int(att["studentid"]), "schoolid": _int(att["schoolid"]),
                        "date": _date(att["att_date"]), "attendance_codeid": _int(att["attendance_codeid"]),
                        "mode": _str(att["att_mode_code"])})
    att = att[att["mode"].fillna("ATT_ModeDaily") == "ATT_ModeDaily"].merge(codes, on="attendance_codeid", how="left")
    absences = att[att["presence"].fillna("").str.lower() == "absent"].copy()
    immunization = absences["description"].fillna("").str.lower().str.contains("immuniz")
    absences["recoverable"] = ~absences["category"].isin(NON_RECOVERABLE_CATEGORIES) & ~immunization
    absences = absences[["student_id", "schoolid", "date", "category", "recoverable"]].reset_index(drop=True)

    exists = reader.has_table(reader.participation_table)
    if exists:
        # Only the year's rows: another year's participation is neither reconciled nor compared (July-June).
        p = reader.read(reader.participation_table, PARTICIPATION_COLUMNS, ("participation_date",),
                        between=("participation_date", lo, hi))
        participation = pd.DataFrame({
            "id": _int(p["id"]), "studentid": _int(p["studentid"]), "schoolid": _int(p["schoolid"]),
            "participation_date": _str(p["participation_date"]).map(lambda v: v[:10] if v else v),
            "minutes": _int(p["minutes"]), "program": _str(p["program"]), "source_row_hash": _str(p["source_row_hash"]),
        })
    else:
        participation = pd.DataFrame({c: pd.Series(dtype="object") for c in PARTICIPATION_COLUMNS})
    return SisSnapshot(lea, students, schools, enrollments, calendar, absences, participation, exists)
