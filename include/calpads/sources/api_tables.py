"""What every vendor API source's ``pull_tables`` hands over, and the check that it can.

``client.pull_tables(scope, work_dir)`` returns, per contract table (lower-case names, as in
``calpads/sources/powerschool_sis.sql``), the rows the CALPADS files read (``TABLE_COLUMNS``), values as
text or None; daily ATTENDANCE is never returned as rows but as the two aggregate frames of
``calpads.sources.attendance_pages`` (keys ``attendance_category_days`` and ``absent_days``).

A vendor's API may not carry every field a file needs. ``check_supplied`` is called before anything is
fetched: when a needed field is neither in the API nor in a supplementary file the district named, the
run fails once, with one plain message listing every gap (MissingSourceData), before any file is built.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from calpads.sources.api_common import MissingSourceData
from calpads.staging import contract

# The contract columns SPRG, SENR, STAS and LEAP read, per table, and ATTENDANCE_CODE (read for the aggregates).
TABLE_COLUMNS: dict[str, list[str]] = {
    **contract.TABLE_COLUMNS,
    contract.ATTENDANCE_CODE: contract.SOURCE_ONLY_COLUMNS[contract.ATTENDANCE_CODE],
}
FRAMES = contract.AGGREGATES

# What each file cannot be built without (TABLE.COLUMN, or TABLE for a whole table), in the words of the
# message. The enrollment's CALPADS codes are not here: a source without them sends the documented defaults
# and says so (SENR_GAP texts).
COMMON = {"PREFS": "the Reporting LEA code", "SCHOOLS.SCHOOL_NUMBER": "the SIS school numbers"}
NEEDS: dict[str, dict[str, str]] = {
    "SENR": {
        **COMMON,
        "CALENDAR_DAY": "school calendars (in-session days, for the enrollments' last days)",
        "STUDENTS.STATE_STUDENTNUMBER": "the SSID", "STUDENTS.DOB": "birth dates",
        "STUDENTS.GENDER": "gender", "STUDENTS.GRADE_LEVEL": "grade levels",
        "REENROLLMENTS.GRADE_LEVEL": "grade levels of earlier enrollments",
    },
    "STAS": {
        **COMMON,
        "CALENDAR_DAY": "school calendars (expected attendance days)",
        "STUDENTS.STATE_STUDENTNUMBER": "the SSID", "STUDENTS.GRADE_LEVEL": "grade levels",
        "ATTENDANCE": "daily attendance",
        "ATTENDANCE_CODE.CALPADS_CATEGORY": "the attendance codes' CALPADS categories",
        "ATTENDANCE_CODE.PRESENCE_STATUS_CD": "whether each attendance code is an absence",
    },
    "LEAP": {
        **COMMON,
        "CALENDAR_DAY": "school calendars (days the ELP days are compared with)",
        "ATTENDANCE": "daily attendance (absent school days)",
        "ATTENDANCE_CODE.PRESENCE_STATUS_CD": "whether each attendance code is an absence",
    },
}
RECORD_TYPES = tuple(NEEDS)


def check_supplied(source: str, supplied: Collection[str], record_types: Collection[str] = RECORD_TYPES,
                   how_to_supply: str = "") -> None:
    """Raise MissingSourceData naming, per file, what ``source`` cannot supply. ``supplied``: TABLE and
    TABLE.COLUMN names the API or a supplementary file provides (``supplied_by``)."""
    have = {s.upper() for s in supplied}
    gaps: dict[str, list[str]] = {}
    for rt in record_types:
        for need, words in NEEDS.get(rt, {}).items():
            if need not in have:
                gaps.setdefault(rt, []).append(f"{words} ({need})")
    if gaps:
        lines = "; ".join(f"{rt} needs {', '.join(g)}" for rt, g in gaps.items())
        raise MissingSourceData(f"{source} cannot supply everything the files need: {lines}. {how_to_supply}".strip())


def needs_attendance(record_types: Collection[str]) -> bool:
    """Whether any of these files reads daily attendance (a pull for the others skips it)."""
    return any("ATTENDANCE" in NEEDS.get(rt, {}) for rt in record_types)


def supplied_by(tables: Mapping[str, Collection[str]]) -> set[str]:
    """TABLE and TABLE.COLUMN names for a {table: columns} mapping."""
    out: set[str] = set()
    for table, cols in tables.items():
        out.add(table.upper())
        out |= {f"{table.upper()}.{c.upper()}" for c in cols}
    return out
