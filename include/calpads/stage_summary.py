"""The one-screen summary a file DAG's quality gate writes at the top of its log (at most SUMMARY_LINES lines):
the counts, what happens to the run, the records held back by rule, and the report's link. The quality gate's
own figures (calpads.quality.gate's summary); no names, birth dates or SSIDs, only counts and rule ids."""

from __future__ import annotations

from typing import Any

SUMMARY_LINES = 14
TOP_RULES = 8


def gate_summary(summary: dict[str, Any], *, scope: str, report_link: str | None) -> str:
    """E.g. "Quality gate (SPRG 2025-2026, submission): 483 records checked, 466 publishable, 17 held back ..."."""
    checked = int(summary.get("records_checked") or 0)
    held = int(summary.get("records_held_back") or 0)
    errors = int(summary.get("records_with_errors") or 0)
    share, ceiling = float(summary.get("error_share") or 0), float(summary.get("ceiling") or 0)
    if summary.get("bypass"):
        outcome = "VALIDATION BYPASSED: every record is published, records in error included"
    elif summary.get("ceiling_exceeded"):
        outcome = f"STOPPED: {share:.1%} of the records in error is more than the {ceiling:.0%} ceiling; nothing " \
                  "is published"
    elif held:
        outcome = f"continues: {checked - held} records go on to be published, {held} wait for a fix in the SIS"
    else:
        outcome = "continues: every record passed every error rule"
    errors_by_rule = sorted(((k, r) for k, r in (summary.get("rules") or {}).items() if r.get("severity") == "error"),
                            key=lambda kv: (-int(kv[1].get("count") or 0), kv[0]))
    lines = [f"Quality gate ({scope}): {checked} records checked, {checked - held} publishable, {held} held back "
             f"({errors} with errors, {share:.1%}; ceiling {ceiling:.0%}), "
             f"{int(summary.get('records_warned') or 0)} published with warnings only",
             f"  Outcome: {outcome}."]
    if errors_by_rule:
        lines.append(f"  Held back by rule ({len(errors_by_rule)} rule{'s' if len(errors_by_rule) != 1 else ''}, "
                     "findings per rule):")
        for rule_id, r in errors_by_rule[:TOP_RULES]:
            text = str(r.get("rule_text") or r.get("message") or "")
            lines.append(f"    {rule_id}: {int(r.get('count') or 0)}" + (f" - {text[:90]}" if text else ""))
        if len(errors_by_rule) > TOP_RULES:
            lines.append(f"    ... and {len(errors_by_rule) - TOP_RULES} more rules: see the report")
    lines.append(f"  Report: {report_link or 'none (the report could not be written)'}")
    return "\n".join(lines[:SUMMARY_LINES])
