"""Planted rule violations (``--dirty``): each kind breaks exactly one rule id of
the brief's table, on records that survive selection for the EOY 2 or Fall 1
program set, and nothing else.

A planted student carries one kind and only the planted program membership
(plus, for the Title I kind, its clean service codes): so the ground truth is
exact per SPRG record, also for the student-level kinds (SSID, gender, legal
name) where every record of the student fires. Ground truth rows go to
DEMO_PLANTED_VIOLATIONS keyed by STUDENTS.ID, program row ID and, for 122,
the service code.

The ground truth holds for report ranges that cover the enrollment (the
default full-year EOY 2 / Fall 1 runs). A narrower range can hide a kind:
start_before_entry is clipped to the range start by the coverage check, and a
range after an end date deselects the record. Which program set a planted
record shows up in follows from its program code (KINDS[kind].program):
181/135 kinds only in Fall 1, 101/108/113/122 kinds only in EOY 2, 191/192
kinds in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Kind:
    rule_id: str
    program: str
    needs: str = "full"        # enrollment the student must have: full | exit | late | title1 | high | secondary
    level: str = "student"     # student: every record of the student fires; record: the planted record only


KINDS: dict[str, Kind] = {
    "ssid_format": Kind("SPRG.3.07.format", "192"),
    "gender_x_no_legal": Kind("SPRG-GENDER-X-LEGAL", "192"),
    "gender_invalid": Kind("SPRG.3.12.code_set", "192"),
    "legal_first_name_too_long": Kind("SPRG.3.09.length", "192"),
    "membership_1_on_108": Kind("SPRG-MEMBERSHIP-CODE", "108", "secondary", "record"),
    "start_before_birth": Kind("SPRG-START-AFTER-BIRTH", "181", "full", "record"),
    "end_before_start": Kind("SPRG-END-AFTER-START", "101", "full", "record"),
    "end_after_exit": Kind("SPRG-END-BEFORE-EXIT", "101", "exit", "record"),
    "end_after_year": Kind("SPRG-END-IN-YEAR", "192", "full", "record"),
    "service_code_99": Kind("SPRG-SERVICE-122", "122", "title1", "record"),
    "cpa_missing": Kind("SPRG-CPA-113", "113", "high", "record"),
    "cpa_not_113": Kind("SPRG-CPA-ONLY-113", "108", "secondary", "record"),
    "migrant_id_not_06": Kind("SPRG-MIGRANT-135", "135", "full", "record"),
    "migrant_id_not_135": Kind("SPRG-MIGRANT-ONLY-135", "181", "full", "record"),
    "disability_not_144": Kind("SPRG-SPED-ONLY-144", "101", "full", "record"),
    "dwelling_not_191": Kind("SPRG-HOMELESS-ONLY-191", "192", "full", "record"),
    "dwelling_code_invalid": Kind("SPRG.3.23.code_set", "191", "full", "record"),
    "start_before_entry": Kind("SPRG-ENROLLED-OVER-RANGE", "108", "late", "record"),
    "no_enrollment_at_school": Kind("SPRG-SCHOOL-OF-SERVICE", "101", "full", "record"),
}


@dataclass(frozen=True)
class SenrKind:
    rule_id: str
    needs: str                 # the exit the student must have: exit (left mid-year) | grad (mid-year graduate)


# Planted SENR exit errors (DEMO_PLANTED_SENR): each breaks exactly one SENR rule of the student's one enrollment.
SENR_KINDS: dict[str, SenrKind] = {
    "exit_no_reason": SenrKind("SENR-EXIT-REASON", "exit"),
    "e230_no_completion": SenrKind("SENR-E230-COMPLETION", "grad"),
    "t165_no_receiver": SenrKind("SENR-T165-RECEIVER", "exit"),
}


def senr_kind_totals(students: int, rate: float) -> dict[str, int]:
    """How many enrollments carry each SENR kind: the SPRG kinds' share per kind, at least one of each."""
    if rate <= 0:
        return {}
    each = max(1, round(rate * students / (len(KINDS) + len(SENR_KINDS))))
    return dict.fromkeys(SENR_KINDS, each)


def kind_totals(students: int, rate: float) -> dict[str, int]:
    """How many students carry each kind: rate x students in all, at least one of each kind."""
    if rate <= 0:
        return {}
    total = max(len(KINDS), round(rate * students))
    base, extra = divmod(total, len(KINDS))
    return {k: base + (1 if i < extra else 0) for i, k in enumerate(KINDS)}


def chunk_quota(totals: dict[str, int], chunk: int, chunks: int) -> dict[str, int]:
    return {k: n // chunks + (1 if chunk < n % chunks else 0) for k, n in totals.items()}


@dataclass
class PlantContext:
    """What a planted record needs to know about its student (chunk-local)."""

    school: int             # school index of the student's (only) enrollment
    other_school: int       # another reportable school, where the student is not enrolled
    entry_idx: int          # session-day index of the entry
    last_idx: int           # session-day index of the last day (179 when open)
    sess: np.ndarray        # session days of the student's school (day numbers)
    dob: int                # day number
    year_last: int          # June 30 of the academic year (day number)
    cpa: str | None         # an academy of the school, if any
    rng: np.random.Generator


def program_row(code: str, membership: str, school: int, start: int, end: int | None = None,
                **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"code": code, "memb": membership, "school": school, "start": start,
                           "end": -1 if end is None else end}
    row.update(fields)
    return row


def planted_program(kind: str, c: PlantContext) -> dict[str, Any]:
    """The one program row of a planted student (plus its services for 122)."""
    k = KINDS[kind]
    entry, rng = int(c.sess[c.entry_idx]), c.rng
    if kind in ("ssid_format", "gender_x_no_legal", "gender_invalid", "legal_first_name_too_long"):
        return program_row("192", "3", c.school, entry)
    if kind == "membership_1_on_108":
        return program_row("108", "1", c.school, entry)
    if kind == "start_before_birth":
        return program_row("181", "1", c.school, c.dob - int(rng.integers(1, 300)))
    if kind == "end_before_start":
        start = int(c.sess[int(rng.integers(30, 60))])
        return program_row("101", "1", c.school, start, start - int(rng.integers(7, 21)))
    if kind == "end_after_exit":
        last = int(c.sess[c.last_idx])
        return program_row("101", "1", c.school, entry, min(last + int(rng.integers(7, 28)), c.year_last))
    if kind == "end_after_year":
        return program_row("192", "3", c.school, entry, c.year_last + int(rng.integers(1, 45)))
    if kind == "service_code_99":
        days = c.sess[np.sort(rng.choice(np.arange(c.entry_idx, 180), size=6, replace=False))]
        services = [("09", int(d)) for d in days[:3]] + [("99", int(d)) for d in days[3:]]
        return program_row("122", "3", c.school, entry, services=services, truth_service="99")
    if kind == "cpa_missing":
        return program_row("113", "3", c.school, entry)
    if kind == "cpa_not_113":
        return program_row("108", "3", c.school, entry, cpa=c.cpa or "10001")
    if kind == "migrant_id_not_06":
        return program_row("135", "1", c.school, entry, migrant="07" + f"{int(rng.integers(0, 10**9)):09d}")
    if kind == "migrant_id_not_135":
        return program_row("181", "1", c.school, entry, migrant="06" + f"{int(rng.integers(0, 10**9)):09d}")
    if kind == "disability_not_144":
        return program_row("101", "3", c.school, entry, disab="290")
    if kind == "dwelling_not_191":
        return program_row("192", "3", c.school, entry, dwelling="110")
    if kind == "dwelling_code_invalid":
        return program_row("191", "3", c.school, entry, dwelling="999", uy="N", ry="N")
    if kind == "start_before_entry":
        return program_row("108", "3", c.school, entry - int(rng.integers(7, 21)))
    if kind == "no_enrollment_at_school":
        return program_row("101", "1", c.other_school, entry)
    raise KeyError(f"unknown planted kind {kind} ({k.rule_id})")
