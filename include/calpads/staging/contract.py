"""The staged table contract: what every SIS source hands the builders, whatever the SIS.

The SIS contract tables (PowerSchool's own tables and the California state-reporting extension
tables, see docs/sis-sources.md) with lower-case table and column names, plus two aggregates
that the source works out where the data lives (an SIS database counts 85M attendance rows
in place; an API source may get them from its vendor):

- ``attendance_category_days``: student_id, schoolid and one count column per STAS category
  (calpads.sources.sql_attendance.category_counts);
- ``absent_days``: student_id, att_date ('YYYY-MM-DD') of daily codes whose presence is Absent.

Both are computed over every reportable school and, for ``absent_days``, over LEAP's whole reporting
year, whatever the run's schools and dates (``aggregate_scopes`` in calpads.extracts.selection), by
every source alike. ATTENDANCE and ATTENDANCE_CODE (``SOURCE_ONLY_COLUMNS``) are read only to compute
them: they are never staged.

Column types are two: the contract's INTEGER columns are int64, everything else (dates
included, as 'YYYY-MM-DD' text) is text, so that a date the SIS stores as text and cannot be
read reaches the builder and its not-extracted report instead of failing the read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pyarrow as pa

PREFS = "prefs"
SCHOOLS = "schools"
CALENDAR_DAY = "calendar_day"
STUDENTS = "students"
REENROLLMENTS = "reenrollments"
STU_X = "s_ca_stu_x"
PROGRAMS = "s_ca_stu_calpadsprograms_c"
SERVICES = "s_ca_calpads_studentservices_c"
ATTENDANCE_CATEGORY_DAYS = "attendance_category_days"
ABSENT_DAYS = "absent_days"

# Contract v2 enrollment codes (SENR 1.23, 1.26-1.29) on STUDENTS and REENROLLMENTS. An older SIS lacks them:
# the source stages them blank and says so (StagedTables.missing_columns).
ENROLLMENT_CODES = ("enrollmentstatus", "exitcode", "completionstatus", "receiver_school", "uccsu_reqs_met")

TABLE_COLUMNS: dict[str, list[str]] = {
    PREFS: ["id", "name", "value", "schoolid"],
    SCHOOLS: ["id", "school_number", "name", "alternate_school_number", "subdistrict", "state_excludefromreporting"],
    CALENDAR_DAY: ["id", "schoolid", "date_value", "insession"],
    STUDENTS: ["id", "dcid", "student_number", "state_studentnumber", "first_name", "last_name", "dob", "gender",
               "schoolid", "grade_level", "entrydate", "exitdate", "enroll_status", "state_excludefromreporting",
               *ENROLLMENT_CODES],
    REENROLLMENTS: ["id", "studentid", "schoolid", "grade_level", "entrydate", "exitdate",
                    "state_excludefromreporting", *ENROLLMENT_CODES],
    STU_X: ["studentsdcid", "legalfirstname", "legallastname", "legalgender"],
    PROGRAMS: ["id", "studentsdcid", "schoolid", "programcode", "programmembershipcode", "programstartdate",
               "programenddate", "partnershipacademyid", "migrantstudentid", "prmarydisabilitycode",
               "distspedaccountability", "dwellingtype", "unaccompaniedyouth", "runawayyouth", "spedexitcode"],
    SERVICES: ["id", "studentsdcid", "schoolid", "servicecode", "servicedate"],
}
# Columns a SIS may lack (staged blank, with a note): table -> columns
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {STUDENTS: ENROLLMENT_CODES, REENROLLMENTS: ENROLLMENT_CODES}
DATE_COLUMNS = {"date_value", "dob", "entrydate", "exitdate", "programstartdate", "programenddate", "servicedate"}
# The SIS tables only the aggregates read (a daily ATTENDANCE row never leaves its source as a row).
ATTENDANCE, ATTENDANCE_CODE = "attendance", "attendance_code"
SOURCE_ONLY_COLUMNS: dict[str, list[str]] = {
    ATTENDANCE: ["id", "studentid", "schoolid", "att_date", "attendance_codeid", "att_mode_code"],
    ATTENDANCE_CODE: ["id", "schoolid", "att_code", "presence_status_cd", "calpads_category"],
}
INT_COLUMNS = {"id", "school_number", "state_excludefromreporting", "schoolid", "insession", "dcid", "studentid",
               "studentsdcid", "grade_level", "enroll_status", "attendance_codeid"}

# The tables whose rows each belong to one student: table -> (its column naming the student, the STUDENTS column
# that column holds). A builder that works student by student may read them one group of students at a time.
STUDENT_KEYS: dict[str, tuple[str, str]] = {
    STUDENTS: ("id", "id"), REENROLLMENTS: ("studentid", "id"), STU_X: ("studentsdcid", "dcid"),
    PROGRAMS: ("studentsdcid", "dcid"), SERVICES: ("studentsdcid", "dcid"),
    ATTENDANCE_CATEGORY_DAYS: ("student_id", "id"), ABSENT_DAYS: ("student_id", "id"),
}

# The contract tables every enrollment-based record type reads, and what each record type adds.
ENROLLMENT_TABLES = (PREFS, SCHOOLS, CALENDAR_DAY, STUDENTS, REENROLLMENTS, STU_X)
AGGREGATES = (ATTENDANCE_CATEGORY_DAYS, ABSENT_DAYS)


def column_type(column: str) -> pa.DataType:
    return pa.int64() if column in INT_COLUMNS else pa.string()


def schema(table: str) -> pa.Schema:
    """The Arrow schema of a contract table (not of an aggregate: its columns come from its source)."""
    return pa.schema([(c, column_type(c)) for c in TABLE_COLUMNS[table]])


def text_value(value: object) -> str | None:
    """A text column's value as the SQL source stages it: dates as 'YYYY-MM-DD', everything else as str."""
    if value is None:
        return None
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return value.isoformat()[:10]
    return str(value)


def typed_array(column: str, values: Iterable[object]) -> pa.Array:
    """One column's values (text, as an API or a CSV file gives them, or typed) in the contract's type: int64 for
    an INTEGER column (blank text is NULL), text for the rest (dates as 'YYYY-MM-DD')."""
    if column_type(column) == pa.int64():
        return pa.array([None if v is None or str(v).strip() == "" else int(str(v).strip()) for v in values],
                        pa.int64())
    return pa.array([text_value(v) for v in values], pa.string())


def rows_table(rows: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> pa.Table:
    """Rows (dicts keyed by the contract's lower-case column names; a column a row lacks is NULL) as an Arrow
    table of ``columns`` in the contract's types: how every API source's rows are typed."""
    rows, columns = list(rows), list(columns)
    return pa.table({col: typed_array(col, (r.get(col) for r in rows)) for col in columns},
                    schema=pa.schema([(col, column_type(col)) for col in columns]))


def rows_frame(rows: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> pd.DataFrame:
    """``rows_table`` as pandas, as StagedTables.frame reads a staged table back."""
    return rows_table(rows, columns).to_pandas()
