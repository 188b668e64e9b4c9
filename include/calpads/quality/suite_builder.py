"""Generate the field-level expectations of a record type's GX suite from its layout.

    python -m calpads.quality.suite_builder            # rewrite great_expectations/expectations/<rt>.json
    python -m calpads.quality.suite_builder --check    # exit 1 when the committed suite is out of date

The suite JSON is the one place the rules live. Expectations whose ``meta.generated``
is true are rewritten from the layout YAML (required, length, format, code set,
fixed value); every other expectation (the hand-written business rules) is kept
exactly as it is, in its order, after the generated ones.

What is generated, per field (rule id ``<RT>.<field number>.<check>``):
- ``required``  ExpectColumnValuesToNotBeNull      when the layout says ``required``
- ``fixed``     ExpectColumnValuesToBeInSet [v]    when the layout has ``fixed``
- ``code_set``  ExpectColumnValuesToBeInSet        when the layout has ``code_set``
- ``format``    ExpectColumnValuesToMatchRegex     per field ``type`` (FORMATS)
- ``length``    ExpectColumnValueLengthsToBeBetween only when no format / code set /
                fixed value already bounds the length (else one bad value would fire two rules)
Blank values are ignored by every check but ``required``, so a blank fires one rule.
A check that a business rule covers is not generated (COVERED_BY_BUSINESS_RULE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from calpads.layouts import Field, Layout, available_layouts, code_set, code_sets, load_layout
from calpads.private_files import replacing

GX_ROOT_DEFAULT = Path(__file__).resolve().parents[3] / "great_expectations"  # <project>/great_expectations
UUID_NAMESPACE = uuid.UUID("6f1c2f1e-3b7a-4c55-9a51-0c41b7e2ca1d")  # stable expectation ids across regenerations

# CCYYMMDD with each month's day count (February 29 is let through every year).
DATE_RE = (r"^(?:19|20)[0-9]{2}(?:(?:0[13578]|1[02])(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)(?:0[1-9]|[12][0-9]|30)"
           r"|02(?:0[1-9]|[12][0-9]))$")
# No caret, double quote, control character or Unicode line separator: the writer (pyarrow, no quoting)
# refuses a caret, a quote or CR/LF, and a reader splitting lines could break at the others. \Z, not $:
# "$" also matches before a final newline, which would let "Ann\n" through.
NO_DELIMITER_RE = r'^[^\^"\x00-\x1f\x7f-\x9f\u2028\u2029]*\Z'
NO_DELIMITER_WORDS = ("free of carets (^), double quotes (\"), line breaks and other control characters, "
                      "which would break the file")
# field type -> (regex, plain words)
FORMATS: dict[str, tuple[str, str]] = {
    "cds_code": (r"^[0-9]{7}$", "exactly 7 digits (a CDS code)"),
    "academic_year": (r"^[0-9]{4}-[0-9]{4}$", "written CCYY-CCYY, e.g. 2025-2026"),
    "ssid": (r"^[0-9]{10}$", "exactly 10 digits"),
    "date": (DATE_RE, "a date written CCYYMMDD, e.g. 20250818"),
    "text": (NO_DELIMITER_RE, NO_DELIMITER_WORDS),
    "name": (NO_DELIMITER_RE, NO_DELIMITER_WORDS),
    "days": (r"^[0-9]{1,3}(\.[0-9]{1,2})?$", "a number of days, e.g. 172 (at most 2 decimals)"),
    "count": (r"^[0-9]{1,3}$", "a whole number, e.g. 3"),
}
LENGTH_BOUNDING_TYPES = {"cds_code", "academic_year", "ssid", "date", "days", "count"}

# record type -> column -> {check: business rule id(s) that cover it}
COVERED_BY_BUSINESS_RULE: dict[str, dict[str, dict[str, str]]] = {
    "SPRG": {
        "service_code": {"code_set": "SPRG-SERVICE-122, SPRG-SERVICE-ONLY-122"},
        "service_academic_year": {"format": "SPRG-SERVICE-122, SPRG-SERVICE-ONLY-122"},
    },
    "STAS": {"attendance_recovery_days": {"format": "STAS0739"}},
    "LEAP": {"elp_days": {"format": "LEAP-DAYS-RANGE"}},
}

# Where a coordinator corrects each value (PowerSchool names, see contracts/powerschool_sis.sql).
WHERE: dict[str, str] = {
    "record_type": "the extract itself (report this to the integration team)",
    "transaction_type": "the pipeline's history comparison (report this to the integration team)",
    "local_record_id": "the extract itself (report this to the integration team)",
    "reporting_lea": "District Info: the district number",
    "school_of_attendance": "School Info: the school's 7-digit CDS school code (Alternate School Number)",
    "academic_year_id": "the run's academic year / the school's year term",
    "ssid": "the student's State Student Number (SSID)",
    "local_student_id": "the student's Student Number",
    "legal_first_name": "the student's legal first name (or first name) in Demographics",
    "legal_last_name": "the student's legal last name (or last name) in Demographics",
    "birth_date": "the student's birth date in Demographics",
    "gender_code": "the student's legal gender (or gender) in Demographics",
    "service_code": "the student's CALPADS Student Services record",
}
PROGRAM_RECORD = "the student's CALPADS Program Eligibility record"


def default_gx_root() -> Path:
    """The committed GX file context; CALPADS_GX_ROOT overrides it (e.g. an image with another layout)."""
    return Path(os.environ.get("CALPADS_GX_ROOT") or GX_ROOT_DEFAULT)


def suite_name(record_type: str) -> str:
    return record_type.lower()


def suite_path(record_type: str, gx_root: Path | None = None) -> Path:
    return (gx_root or default_gx_root()) / "expectations" / f"{suite_name(record_type)}.json"


def _expectation(rule_id: str, gx_type: str, kwargs: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(UUID_NAMESPACE, rule_id)),
        "type": gx_type,
        "kwargs": kwargs,
        "meta": {"rule_id": rule_id, **meta},
        "severity": "critical" if meta["severity"] == "error" else "warning",
    }


def field_expectations(layout: Layout) -> list[dict[str, Any]]:
    covered = COVERED_BY_BUSINESS_RULE.get(layout.record_type, {})
    out: list[dict[str, Any]] = []
    for f in layout.fields:
        where = f.fix_in or WHERE.get(f.column) or layout.raw.get("fix_in", PROGRAM_RECORD)
        label = f"{f.name} ({f.number})"
        checks = _checks(f, label, where)
        for check, gx_type, kwargs, rule_text, fix in checks:
            if check in covered.get(f.column, {}):
                continue
            rule_id = f"{layout.record_type}.{f.number}.{check}"
            out.append(_expectation(rule_id, gx_type, {"column": f.column, **kwargs}, {
                "severity": "error",
                "field": f.number,
                "columns": [f.column],
                "rule_text": rule_text,
                "fix": fix,
                "source": f"Layout {layout.record_type.lower()}.yaml field {f.number} {f.name} "
                          + (f"({f.source})" if f.source else "(PowerSchool Student Program Records Report fields)"),
                "generated": True,
            }))
    return out


def _checks(f: Field, label: str, where: str) -> list[tuple[str, str, dict[str, Any], str, str]]:
    checks: list[tuple[str, str, dict[str, Any], str, str]] = []
    if f.required:
        checks.append(("required", "expect_column_values_to_not_be_null", {},
                       f"{label} must not be blank.", f"Enter the {f.name} in {where}."))
    if f.fixed is not None:
        checks.append(("fixed", "expect_column_values_to_be_in_set", {"value_set": [f.fixed]},
                       f"{label} must be {f.fixed}.", f"Report this to the integration team: the extract writes "
                       f"{f.fixed} here."))
    if f.code_set:
        codes = code_set(f.code_set)
        shown = ", ".join(codes) if len(codes) <= 20 else ", ".join(codes[:20]) + ", ..."
        unconfirmed = "" if code_sets()[f.code_set].get("confirmed", True) else " (code list unconfirmed)"
        checks.append(("code_set", "expect_column_values_to_be_in_set", {"value_set": codes},
                       f"{label} must be a CALPADS code{unconfirmed}: {shown}.",
                       f"Choose a valid {f.name} code in {where}."))
    if f.type in FORMATS:
        regex, words = FORMATS[f.type]
        checks.append(("format", "expect_column_values_to_match_regex", {"regex": regex},
                       f"{label} must be {words}.", f"Correct the {f.name} in {where}: it must be {words}."))
    bounded = f.type in LENGTH_BOUNDING_TYPES or f.code_set or f.fixed is not None
    if not bounded:
        checks.append(("length", "expect_column_value_lengths_to_be_between", {"max_value": f.max_length},
                       f"{label} must be at most {f.max_length} characters long.",
                       f"Shorten the {f.name} in {where} to {f.max_length} characters or fewer."))
    return checks


def render_suite(record_type: str, gx_root: Path | None = None) -> str:
    """The suite JSON text: regenerated field-level expectations + the kept hand-written ones."""
    layout = load_layout(record_type)
    path = suite_path(record_type, gx_root)
    current: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    kept = [e for e in current.get("expectations", []) if not e.get("meta", {}).get("generated")]
    suite = {
        "name": suite_name(record_type),
        "id": current.get("id") or str(uuid.uuid5(UUID_NAMESPACE, f"suite:{record_type}")),
        "meta": current.get("meta") or {
            "record_type": record_type,
            "about": "CALPADS rules for the quality gate. Field-level expectations (meta.generated) come from "
                     "include/calpads/layouts; edit the layout and run `python -m calpads.quality.suite_builder`. "
                     "Business rules are hand-written here; ctx_ columns are added by calpads.quality.gate.",
        },
        "notes": current.get("notes"),
        "expectations": [*field_expectations(layout), *kept],
    }
    return json.dumps(suite, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


ASSET_BLOCK = """      {name}:
        type: dataframe
        id: {asset_id}
        batch_metadata: {{}}
        batch_definitions:
          whole_dataframe:
            id: {batch_id}
            partitioner:
"""


def has_asset(record_type: str, gx_root: Path | None = None) -> bool:
    yml = (gx_root or default_gx_root()) / "great_expectations.yml"
    return not yml.exists() or f"\n      {record_type}:\n" in yml.read_text()   # no yml: a suites-only folder


def ensure_asset(record_type: str, gx_root: Path | None = None) -> None:
    """The gate validates a record type's frame through the dataframe asset of that name in the
    ``calpads_records`` datasource: add it to great_expectations.yml when missing (text insertion,
    so the file's comments stay)."""
    yml = (gx_root or default_gx_root()) / "great_expectations.yml"
    if has_asset(record_type, gx_root):
        return
    text = yml.read_text()
    anchor = "  calpads_records:\n"
    at = text.index("    assets:\n", text.index(anchor)) + len("    assets:\n")
    block = ASSET_BLOCK.format(name=record_type, asset_id=uuid.uuid5(UUID_NAMESPACE, f"asset:{record_type}"),
                               batch_id=uuid.uuid5(UUID_NAMESPACE, f"batch:{record_type}"))
    yml.write_text(text[:at] + block + text[at:])


def write_suite(record_type: str, gx_root: Path | None = None) -> Path:
    ensure_asset(record_type, gx_root)
    path = suite_path(record_type, gx_root)
    text = render_suite(record_type, gx_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "w", 0o644, encoding="utf-8") as fh:   # committed to the repository: not private
        fh.write(text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("record_types", nargs="*", help="default: every layout (calpads.layouts.available_layouts)")
    parser.add_argument("--gx-root", type=Path, default=None)
    parser.add_argument("--check", action="store_true", help="only check that the committed suite is up to date")
    args = parser.parse_args(argv)
    stale = []
    for rt in args.record_types or available_layouts():
        path = suite_path(rt, args.gx_root)
        if args.check:
            if not path.exists() or path.read_text() != render_suite(rt, args.gx_root) \
                    or not has_asset(rt, args.gx_root):
                stale.append(str(path))
        else:
            print(f"wrote {write_suite(rt, args.gx_root)}")
    if stale:
        print("out of date (run python -m calpads.quality.suite_builder): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
