"""Run parameters (docs/architecture.md): their schema, in one place, and the resolved scope of a run.

The DAG factory turns PARAM_SPECS into Airflow ``Param``s (the UI form); tasks
turn the run's params into a ``RunScope`` with ``RunScope.from_params``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

SCHOOL_CODE = r"^[0-9]{7}$"
PROGRAM_CODE = r"^[0-9]{3}$"
LOCAL_STUDENT_ID = r"^[A-Za-z0-9-]{1,15}$"
SUBDISTRICT = r"^[A-Za-z0-9 .,'&()/-]{1,60}$"
MODES = ("submission", "replacement", "non_submission")
SUBMISSIONS = ("fall1", "eoy2", "custom")
BY_CALENDAR = "calendar"   # the form's default: fall1 or eoy2 by the run's date (calpads.deadlines.watch)
# Academic years a run may cover: from 2000-2001 (older data is not in CALPADS) to a few years ahead of today
# (a pre-registration year at most). Anything else is a typo, and a year past 2261 cannot even be held by pandas.
FIRST_ACADEMIC_YEAR = 2000
YEARS_AHEAD = 2
KNOWN_VALUES_SHOWN = 40          # known schools / sub-districts / programs listed in a rejection message
# An optional list: the UI's trigger form marks a param required (an asterisk) unless its type allows null,
# and renders it by its first non-null type; RunScope reads null as empty.
LIST_TYPE = ["array", "null"]


class ScopeError(ValueError):
    """A run parameter that cannot be used; the message says which and why."""


def current_academic_year(today: date) -> str:
    """CALPADS academic years run July 1 - June 30."""
    first = today.year if today.month >= 7 else today.year - 1
    return f"{first}-{first + 1}"


def academic_year_bounds(academic_year: str) -> tuple[date, date]:
    first, second = _split_year(academic_year)
    return date(first, 7, 1), date(second, 6, 30)


def _split_year(academic_year: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{4})-(\d{4})", academic_year or "")
    if not m or int(m.group(2)) != int(m.group(1)) + 1:
        raise ScopeError(
            f"academic_year {academic_year!r} is not of the form CCYY-CCYY with consecutive years (e.g. 2025-2026)"
        )
    return int(m.group(1)), int(m.group(2))


def academic_year_choices(today: date) -> list[str]:
    """Every academic year a run may cover, oldest first: 2000-2001 up to YEARS_AHEAD years after today's."""
    last = int(current_academic_year(today)[:4]) + YEARS_AHEAD
    return [f"{y}-{y + 1}" for y in range(FIRST_ACADEMIC_YEAR, last + 1)]


def academic_year_pattern(today: date) -> str:
    """The form's pattern for academic_year: exactly the years of academic_year_choices."""
    return "^(" + "|".join(re.escape(y) for y in academic_year_choices(today)) + ")$"


def check_academic_year(academic_year: str, today: date) -> None:
    _split_year(academic_year)
    choices = academic_year_choices(today)
    if academic_year not in choices:
        raise ScopeError(f"academic_year {academic_year!r} is outside the years a run may cover "
                         f"({choices[0]} to {choices[-1]}): check the year for a typo")


def _default_submission(today: date, academic_year: str | None = None) -> str:
    from calpads.deadlines.watch import default_submission

    return default_submission(today, academic_year=academic_year)


def param_specs(today: date, default_year: str | None = None) -> dict[str, dict[str, Any]]:
    """JSON-schema of every run param, with the descriptions the UI form shows. ``default_year``: the academic
    year of scheduled runs and the form's default (``[calpads] default_academic_year``), else today's."""
    if default_year:
        check_academic_year(default_year, today)
    return {
        "academic_year": dict(
            default=default_year or current_academic_year(today), type="string", pattern=academic_year_pattern(today),
            title="Academic year",
            description=f"CALPADS academic year, CCYY-CCYY (July 1 to June 30), from "
            f"{academic_year_choices(today)[0]} to {academic_year_choices(today)[-1]}.",
        ),
        "start_date": dict(
            default="", type="string", pattern=r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$",
            title="Report start date",
            description="YYYY-MM-DD. Blank = first day of the academic year (July 1).",
        ),
        "end_date": dict(
            default="", type="string", pattern=r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$",
            title="Report end date",
            description="YYYY-MM-DD. Blank = last day of the academic year (June 30).",
        ),
        "submission": dict(
            default=BY_CALENDAR, type="string", enum=[BY_CALENDAR, *SUBMISSIONS], title="Submission",
            values_display={BY_CALENDAR: f"By the CALPADS calendar (today: {_default_submission(today)})",
                            "fall1": "fall1: Fall 1 programs", "eoy2": "eoy2: End of Year 2 programs",
                            "custom": "custom: the programs listed below"},
            description="Program set (SPRG): fall1 = Fall 1 programs, eoy2 = End of Year 2 programs, "
            "custom = the programs listed below. By the calendar: fall1 while the academic year's Fall 1 window is "
            "open on the run's date, eoy2 otherwise.",
        ),
        "programs": dict(
            default=[], type=LIST_TYPE, items={"type": "string", "pattern": PROGRAM_CODE},
            title="Programs (custom)",
            description="Education Program Codes (CALPADS code set), used when submission is custom.",
        ),
        "mode": dict(
            default="submission", type="string", enum=list(MODES), title="Report mode",
            description="submission = only new or changed records since the last saved submission, plus deletes; "
            "replacement = every record; non_submission = every record, for troubleshooting (never saved).",
        ),
        "save_history": dict(
            default=False, type="boolean", title="Save as submitted",
            description="Record this run's records as submitted to CALPADS. Set it on the run whose files you upload. "
            "Ignored in non_submission mode.",
        ),
        "schools": dict(
            default=[], type=LIST_TYPE, items={"type": "string", "pattern": SCHOOL_CODE},
            title="Schools", description="7-digit CDS school codes of the district's reportable schools. "
            "Empty = district-wide. An unknown code stops the run.",
        ),
        "subdistricts": dict(
            default=[], type=LIST_TYPE, items={"type": "string", "pattern": SUBDISTRICT},
            title="Sub-districts", description="Sub-district names (SCHOOLS.SUBDISTRICT, exactly as in the SIS), "
            "narrowing the schools. An unknown name stops the run.",
        ),
        "students": dict(
            default=[], type=LIST_TYPE, items={"type": "string", "pattern": LOCAL_STUDENT_ID},
            title="Students", description="Local Student IDs, for a run over selected students only. Empty = all.",
        ),
        "bypass_validation": dict(
            default=False, type="boolean", title="Bypass validation",
            description="Publish records that fail error rules too. The manifest, report and email say so.",
        ),
        "ods_file": dict(
            default="", type="string", title="CALPADS ODS file",
            description="Path or URL of a CALPADS ODS extract to compare against, or blank.",
        ),
        "allow_mass_delete": dict(
            default=False, type="boolean", title="Allow mass delete",
            description="Let this run publish deletes of more than the allowed share (default 20%) of the "
            "previously submitted records in its scope. Leave off unless you checked that the deletes are real: a "
            "wrong date range or a broken SIS pull also looks like mass deletes.",
        ),
        "allow_enrolled_deletes": dict(
            default=False, type="boolean", title="Allow deletes of enrolled students",
            description="Let this run publish deletes (D records) of students who are still enrolled in the run's "
            "scope, including the delete of an old key when a school, SSID, program or start date was changed. "
            "Leave off unless you checked each listed record in the SIS: a typo in the SIS also looks like this.",
        ),
    }


@dataclass(frozen=True)
class RunScope:
    """Everything a run's tasks need to know about what it covers."""

    record_type: str
    academic_year: str
    start_date: date
    end_date: date
    today: date
    submission: str = "eoy2"
    programs: tuple[str, ...] = ()
    mode: str = "submission"
    save_history: bool = False
    schools: tuple[str, ...] = ()
    subdistricts: tuple[str, ...] = ()
    students: tuple[str, ...] = ()
    bypass_validation: bool = False
    ods_file: str = ""
    allow_mass_delete: bool = False
    allow_enrolled_deletes: bool = False

    @classmethod
    def from_params(cls, record_type: str, params: dict[str, Any], today: date) -> RunScope:
        p = dict(params)
        year = p.get("academic_year") or current_academic_year(today)
        check_academic_year(year, today)
        first, last = academic_year_bounds(year)
        start = _parse_date(p.get("start_date"), "start_date") or first
        end = _parse_date(p.get("end_date"), "end_date") or last
        if end < start:
            raise ScopeError(f"end_date {end} is before start_date {start}")
        if start < first or end > last:
            raise ScopeError(f"the report range {start}..{end} is not inside academic year {year} ({first}..{last})")
        mode = p.get("mode") or "submission"
        if mode not in MODES:
            raise ScopeError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        submission = p.get("submission") or "eoy2"
        if submission == BY_CALENDAR:
            submission = _default_submission(today, year)
        if submission not in SUBMISSIONS:
            raise ScopeError(f"submission {submission!r} is not one of {', '.join(SUBMISSIONS)}")
        programs = tuple(_checked_list(p.get("programs"), PROGRAM_CODE, "programs"))
        check_program_codes(programs)
        if submission == "custom" and not programs:
            raise ScopeError("submission is custom but no programs were chosen")
        return cls(
            record_type=record_type.upper(),
            academic_year=year,
            start_date=start,
            end_date=end,
            today=today,
            submission=submission,
            programs=programs,
            mode=mode,
            save_history=bool(p.get("save_history")) and mode != "non_submission",
            schools=tuple(_checked_list(p.get("schools"), SCHOOL_CODE, "schools")),
            subdistricts=tuple(_checked_list(p.get("subdistricts"), SUBDISTRICT, "subdistricts")),
            students=tuple(_checked_list(p.get("students"), LOCAL_STUDENT_ID, "students")),
            bypass_validation=bool(p.get("bypass_validation")),
            ods_file=str(p.get("ods_file") or ""),
            allow_mass_delete=bool(p.get("allow_mass_delete")),
            allow_enrolled_deletes=bool(p.get("allow_enrolled_deletes")),
        )

    @property
    def year_id(self) -> int:
        """PowerSchool's TERMS.YEARID: years counted from 1990-1991."""
        return _split_year(self.academic_year)[0] - 1990

    @property
    def academic_year_first_day(self) -> date:
        return academic_year_bounds(self.academic_year)[0]

    @property
    def academic_year_last_day(self) -> date:
        return academic_year_bounds(self.academic_year)[1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("start_date", "end_date", "today"):
            d[k] = d[k].isoformat()
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunScope:
        d = dict(d)
        for k in ("start_date", "end_date", "today"):
            d[k] = date.fromisoformat(d[k])
        for k in ("programs", "schools", "subdistricts", "students"):
            d[k] = tuple(d.get(k) or ())
        return cls(**d)


def _parse_date(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ScopeError(f"{name} {value!r} is not a date of the form YYYY-MM-DD") from None


def _checked_list(value: Any, pattern: str, name: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    out = []
    for v in value:
        s = str(v)
        if not re.fullmatch(pattern, s):
            raise ScopeError(f"{name}: {s[:40]!r} is not a valid value")
        out.append(s)
    return out


# --------------------------------------------------------------------------- values the district knows
def _listed(values: list[str]) -> str:
    shown = ", ".join(values[:KNOWN_VALUES_SHOWN])
    more = len(values) - KNOWN_VALUES_SHOWN
    return (shown + (f" and {more} more" if more > 0 else "")) or "(none)"


def check_program_codes(programs: tuple[str, ...] | list[str]) -> None:
    """Every program is an Education Program Code of the CALPADS code set (layouts/code_sets.yaml): an unknown
    code would select nothing and publish an empty file."""
    from calpads.layouts import code_set

    known = code_set("education_program")
    unknown = [p for p in programs if p not in known]
    if unknown:
        raise ScopeError(f"programs: {', '.join(unknown)} is not an Education Program Code of the CALPADS code set. "
                         f"Known codes: {_listed(known)}.")


def check_schools_known(scope: RunScope, school_codes: list[str], subdistricts: list[str]) -> None:
    """The run's schools and sub-districts are among the district's reportable schools (the SIS's SCHOOLS rows
    not excluded from state reporting): an unknown value would silently narrow the run to nothing (empty
    files) or, worse, be ignored and widen it to the whole district. Raises ScopeError listing the known values."""
    codes = sorted({str(c) for c in school_codes if c})
    names = sorted({str(n) for n in subdistricts if n})
    problems = []
    unknown_schools = [s for s in scope.schools if s not in codes]
    if unknown_schools:
        problems.append(f"schools: {', '.join(unknown_schools)} is not the CDS code of a reportable school of the "
                        f"district (excluded schools are not reportable). Known school codes: {_listed(codes)}.")
    unknown_names = [n for n in scope.subdistricts if n not in names]
    if unknown_names:
        problems.append(f"subdistricts: {', '.join(repr(n) for n in unknown_names)} is not a sub-district of the "
                        f"district's reportable schools (names must match SCHOOLS.SUBDISTRICT exactly). Known "
                        f"sub-districts: {_listed([repr(n) for n in names])}.")
    if problems:
        raise ScopeError(" ".join(problems) + " Trigger the run again with corrected values.")
