"""A district's supplementary files: the contract tables a rostering API (OneRoster) does not carry.

OneRoster 1.1/1.2 rosters schools, students and enrollments, but has no school calendar, no attendance,
no SSID, birth date or grade on every implementation, and no CALPADS enrollment codes. A district that
reads its SIS through OneRoster exports those from its SIS as a folder of CSV files in the contract
tables' shape and names the folder in the connection's extras (``supplementary_folder``). The files,
their columns and rules are in ``FILES`` (and in docs/sis-sources.md); every file is optional, and what
a file the run needs lacks is reported before anything is built (calpads.sources.api_tables).

Format (as the afterschool export, calpads.afterschool.ingest): UTF-8 (a BOM is allowed), a header line,
comma-separated, quoted as RFC 4180, LF or CRLF. The header names each required column once (any order);
an optional column may be left out; a column the file does not define is refused. Every value is checked
(``Rule``) as far as reading it needs: keys, numbers, dates the pipeline computes with, flags and
codes it decides on; CALPADS rules on the values (SSID, birth date, code sets) are the quality gate's, as for
every source. A bad value stops the run with ``SupplementaryFileError`` naming the file, the line, the
column, the record's local key and the rule, never the value of a personal field (birth date, names,
SSID). Nothing is silently dropped: a line is used whole or the run stops.

Students are keyed by the Local Student ID (``student_number``, digits; it is also the contract's
STUDENTS.ID, as for Aeries), schools by the SIS school number of ``schools.csv``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from calpads.extracts.stas import settings as stas_settings

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# ATTENDANCE_CODE.CALPADS_CATEGORY values: the categories STAS counts (include/calpads/extracts/stas.yaml).
CATEGORIES = frozenset(stas_settings()["categories"])
MAX_ERRORS_SHOWN = 20


class SupplementaryFileError(ValueError):
    """A supplementary file breaks its rules (file, line, column, local key and rule in the message)."""


@dataclass(frozen=True)
class Rule:
    text: str                                  # the rule, in the message
    check: Callable[[str], bool]
    personal: bool = False                     # never echo the value


def _is_date(v: str) -> bool:
    if not DATE.match(v):
        return False
    try:
        date.fromisoformat(v)
    except ValueError:
        return False
    return True


INTEGER = Rule("a whole number", lambda v: bool(re.fullmatch(r"-?\d+", v)))
DIGITS = Rule("digits only", lambda v: v.isdigit())
A_DATE = Rule("a date written YYYY-MM-DD", _is_date)
FLAG = Rule("0 or 1", lambda v: v in ("0", "1"))
TEXT = Rule("text", lambda v: True)
PERSONAL_TEXT = Rule("text", lambda v: True, personal=True)
GRADE = Rule("a grade level number (as PowerSchool's GRADE_LEVEL: -1 TK, 0 K, 1-12)",
             lambda v: bool(re.fullmatch(r"-?\d{1,2}", v)))
PRESENCE = Rule("Present or Absent", lambda v: v in ("Present", "Absent"))
CATEGORY = Rule(f"one of {', '.join(sorted(CATEGORIES))}", lambda v: v in CATEGORIES)
MODE = Rule("ATT_ModeDaily or another PowerSchool attendance mode (ATT_Mode...)", lambda v: v.startswith("ATT_Mode"))


@dataclass(frozen=True)
class FileSpec:
    table: str                                 # the contract table it supplies
    required: dict[str, Rule]                  # column -> rule; a value must be there
    optional: dict[str, Rule] = field(default_factory=dict)   # column may be left out, a value may be blank
    key: tuple[str, ...] = ()                  # columns unique per line (duplicates refused)
    defaults: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.required, *self.optional]


FILES: dict[str, FileSpec] = {
    "schools.csv": FileSpec("schools", {"school_number": INTEGER, "alternate_school_number": TEXT},
                            {"name": TEXT, "subdistrict": TEXT, "state_excludefromreporting": FLAG},
                            key=("school_number",), defaults={"state_excludefromreporting": "0"}),
    "students.csv": FileSpec("students", {"student_number": DIGITS},
                             {"state_studentnumber": PERSONAL_TEXT, "dob": PERSONAL_TEXT, "gender": TEXT,
                              "grade_level": GRADE, "legalfirstname": PERSONAL_TEXT, "legallastname": PERSONAL_TEXT,
                              "legalgender": TEXT, "state_excludefromreporting": FLAG},
                             key=("student_number",), defaults={"state_excludefromreporting": "0"}),
    "enrollment_codes.csv": FileSpec("enrollment_codes", {"student_number": DIGITS, "school_number": INTEGER,
                                                          "entrydate": TEXT},
                                     {"grade_level": GRADE, "enrollmentstatus": TEXT, "exitcode": TEXT,
                                      "completionstatus": TEXT, "receiver_school": TEXT, "uccsu_reqs_met": TEXT},
                                     key=("student_number", "school_number", "entrydate")),
    "calendar_day.csv": FileSpec("calendar_day", {"schoolid": INTEGER, "date_value": A_DATE, "insession": FLAG},
                                 key=("schoolid", "date_value")),
    "attendance_code.csv": FileSpec("attendance_code", {"id": INTEGER, "schoolid": INTEGER, "att_code": TEXT,
                                                        "presence_status_cd": PRESENCE},
                                    {"calpads_category": CATEGORY}, key=("id",)),
    "attendance.csv": FileSpec("attendance", {"studentid": DIGITS, "schoolid": INTEGER, "att_date": A_DATE,
                                              "attendance_codeid": INTEGER},
                               {"att_mode_code": MODE, "id": INTEGER}, defaults={"att_mode_code": "ATT_ModeDaily"}),
}


def _where(name: str, line: int, spec: FileSpec, row: dict[str, str]) -> str:
    key = ", ".join(f"{k} {row.get(k) or '(blank)'}" for k in (spec.key or spec.columns[:2])
                    if not spec.required.get(k, spec.optional.get(k, TEXT)).personal)
    return f"{name} line {line}" + (f" ({key})" if key else "")


def read_file(path: Path, spec: FileSpec) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line, row) of one supplementary file, every value checked; raises SupplementaryFileError on the first
    line that breaks a rule (a streaming reader: attendance.csv can hold millions of lines)."""
    name = path.name
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise SupplementaryFileError(f"{name} line 1: the file is empty; it needs a header line "
                                             f"({', '.join(spec.required)}).")
            header = [h.strip().lower() for h in header]
            missing = [c for c in spec.required if c not in header]
            unknown = [c for c in header if c not in spec.columns]
            twice = sorted({c for c in header if header.count(c) > 1})
            if missing or unknown or twice:
                problems = [f"missing column(s) {', '.join(missing)}" if missing else "",
                            f"column(s) {', '.join(unknown)} not defined for this file" if unknown else "",
                            f"column(s) {', '.join(twice)} named twice" if twice else ""]
                raise SupplementaryFileError(
                    f"{name} line 1: {'; '.join(p for p in problems if p)}. Its columns: "
                    f"{', '.join(spec.required)} (required), {', '.join(spec.optional) or 'none'} (optional); "
                    "see docs/sis-sources.md.")
            seen: set[tuple[str | None, ...]] = set()
            for fields in reader:
                line = reader.line_num
                if not fields or fields == [""]:
                    continue
                if len(fields) != len(header):
                    raise SupplementaryFileError(f"{name} line {line}: {len(fields)} fields where the header has "
                                                 f"{len(header)}.")
                raw = {c: v.strip() for c, v in zip(header, fields, strict=True)}
                row: dict[str, str | None] = {}
                for col in spec.columns:
                    v = raw.get(col, "")
                    rule = spec.required.get(col) or spec.optional[col]
                    if v == "":
                        if col in spec.required:
                            raise SupplementaryFileError(f"{_where(name, line, spec, raw)}: {col} is blank; it "
                                                         f"must be {rule.text}.")
                        row[col] = spec.defaults.get(col)
                        continue
                    if not rule.check(v):
                        shown = "" if rule.personal else f" {v!r}"
                        raise SupplementaryFileError(f"{_where(name, line, spec, raw)}: {col}{shown} is not "
                                                     f"{rule.text}.")
                    row[col] = v
                if spec.key:
                    k = tuple(row[c] for c in spec.key)
                    if k in seen:
                        raise SupplementaryFileError(f"{_where(name, line, spec, raw)}: a second line for the same "
                                                     f"{', '.join(spec.key)}; each may appear once.")
                    seen.add(k)
                yield line, row
        except csv.Error as exc:
            raise SupplementaryFileError(f"{name} line {reader.line_num}: not valid CSV ({exc}).") from None


@dataclass
class SupplementaryFolder:
    """The folder named by the connection's ``supplementary_folder``."""

    folder: Path

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not self.folder.is_dir():
            raise SupplementaryFileError(f"The supplementary folder {self.folder} does not exist or is not a folder.")
        unknown = sorted(p.name for p in self.folder.glob("*.csv") if p.name not in FILES)
        if unknown:
            raise SupplementaryFileError(f"The supplementary folder holds {', '.join(unknown)}, which is not one of "
                                         f"its files ({', '.join(FILES)}); rename or remove it (nothing is ignored).")

    def has(self, name: str) -> bool:
        return (self.folder / name).is_file()

    def header(self, name: str) -> list[str]:
        with open(self.folder / name, encoding="utf-8-sig", newline="") as fh:
            first = next(csv.reader(fh), [])
        return [h.strip().lower() for h in first]

    def rows(self, name: str) -> list[dict[str, Any]]:
        return [row for _line, row in read_file(self.folder / name, FILES[name])] if self.has(name) else []

    def lines(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        return read_file(self.folder / name, FILES[name]) if self.has(name) else iter(())

    def supplied(self) -> dict[str, list[str]]:
        """{contract table: columns} the folder's files give (an optional column counts when its header has it);
        enrollment_codes.csv supplies STUDENTS and REENROLLMENTS columns."""
        out: dict[str, list[str]] = {}
        for name, spec in FILES.items():
            if self.has(name):
                head = self.header(name)
                cols = [c for c in spec.columns if c in spec.required or c in head]
                for table in (("students", "reenrollments") if spec.table == "enrollment_codes" else (spec.table,)):
                    out.setdefault(table, []).extend(cols)
        return out
