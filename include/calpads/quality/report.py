"""The run's validation report: findings.csv, index.html and the GX Data Docs of the validation.

Everything is written owner-only (umask 077; files 0600, folders 0700): the report names
students by Local Record ID / Local Student ID, and never shows names, birth dates or SSIDs
(the gate masks those values; the Data Docs get a redacted copy of GX's result).
"""

from __future__ import annotations

import contextlib
import copy
import html
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from calpads.layouts import load_layout
from calpads.private_files import write_private
from calpads.quality.gate import MASK, GateResult

LISTING_LIMIT = 5000          # records listed in index.html; findings.csv always has them all
DOCS_DIR = "data_docs"
DOCS_SITE = "calpads_run_report"
RESULT_LISTS = ("partial_unexpected_list", "partial_unexpected_index_list", "partial_unexpected_counts")
DROPPED_LISTS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")
PII_DERIVED = {"ctx_birth_dt"}  # gate-derived columns that carry a PII value


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _write_text(path: Path, text: str) -> None:
    write_private(path, text)


def write_report(result: GateResult, report_dir: Path, *, run_id: str, record_type: str,
                 notes: list[str] | None = None, not_extracted: pd.DataFrame | None = None) -> dict[str, str]:
    """Write the report files into report_dir; returns {what: path relative to report_dir}. notes: what the
    builder says about this extract (calpads.extracts.registry.Built.notes), shown near the top.
    ``not_extracted`` (the builder's rows left out for a data problem) gets its own table in index.html."""
    report_dir = Path(report_dir)
    with _private_umask():
        report_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_text(report_dir / "findings.csv", result.findings.to_csv(index=False))
        written = {"findings": "findings.csv"}
        docs_index = build_data_docs(result, report_dir / DOCS_DIR, run_id=run_id, record_type=record_type)
        if docs_index is not None:
            written["data_docs"] = str(docs_index.relative_to(report_dir))
        _write_text(report_dir / "index.html", render_html(result, run_id=run_id, record_type=record_type,
                                                           data_docs=written.get("data_docs"), notes=notes,
                                                           not_extracted=not_extracted))
        written["index"] = "index.html"
    _restrict_tree(report_dir)
    return written


def _restrict_tree(root: Path) -> None:
    """GX writes Data Docs with its own modes; make the whole report owner-only."""
    os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o700)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o600)


# --------------------------------------------------------------------------- Data Docs
def redacted_validation_result(result: GateResult) -> Any:
    """A copy of GX's result fit for a report: no full row lists, PII values masked."""
    raw = result.validation_result
    pii = set(result.pii_columns) | PII_DERIVED
    out = copy.copy(raw)
    out.results = []
    for r in raw.results:
        kw = r.expectation_config.kwargs
        cols = {kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])}
        mask = bool(cols & pii)
        res = {k: v for k, v in (r.result or {}).items() if k not in DROPPED_LISTS}
        if mask:
            for key in RESULT_LISTS:
                if key in res:
                    res[key] = _mask_list(res[key], pii)
        r2 = copy.copy(r)
        r2.result = res
        r2.expectation_config = _with_notes(r.expectation_config)
        out.results.append(r2)
    return out


def _with_notes(config: Any) -> Any:
    """Data Docs show each rule as its id, plain words and fix (GX renders a description in place of its own
    wording; the technical check stays in the notes and the suite JSON)."""
    meta = config.meta or {}
    if "rule_id" not in meta:
        return config
    config = copy.deepcopy(config)
    config.description = (f"{meta['rule_id']} ({meta.get('severity', 'error')}, field {meta.get('field', '')}): "
                          f"{meta.get('rule_text', '')} Fix: {meta.get('fix', '')}")
    config.notes = f"Checked with {config.type} on {_domain(config.kwargs)}."
    return config


def _domain(kwargs: dict[str, Any]) -> str:
    return ", ".join(str(kwargs[k]) for k in ("column", "column_A", "column_B") if kwargs.get(k))


def _mask_list(items: list[Any], pii: set[str]) -> list[Any]:
    masked: list[Any] = []
    for item in items:
        if isinstance(item, dict) and "value" in item and "count" in item:        # partial_unexpected_counts
            masked.append({**item, "value": MASK})
        elif isinstance(item, dict):                                               # index list entries
            masked.append({k: (MASK if k in pii else v) for k, v in item.items()})
        else:
            masked.append(MASK)
    return masked


def build_data_docs(result: GateResult, docs_dir: Path, *, run_id: str, record_type: str) -> Path | None:
    """Build GX Data Docs for this one validation into docs_dir (an ephemeral context with one
    site whose store base directory is docs_dir, so nothing lands in the committed GX folder)."""
    if result.validation_result is None:
        return None
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    import great_expectations as gx

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(DOCS_SITE, {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_cta_footer": False},
    })
    validation = redacted_validation_result(result)
    suite_name = validation.suite_name
    run_time = datetime.now(UTC)
    validation.meta = {**(validation.meta or {}), "run_id": RunIdentifier(run_name=run_id, run_time=run_time),
                       "calpads_record_type": record_type}
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=RunIdentifier(run_name=run_id, run_time=run_time),
        batch_identifier=f"{record_type}-records",
    )
    context.validation_results_store.set(key, validation)
    urls = context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=[key])
    index = docs_dir / "index.html"
    if not index.exists() and urls:
        return None
    return index


# --------------------------------------------------------------------------- index.html
CSS = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;width:100%}th,td{border:1px solid #ccc;padding:.35rem .5rem;
text-align:left;vertical-align:top;font-size:.9rem}th{background:#f2f2f2}.error{color:#a00;font-weight:600}
.warning{color:#8a5a00;font-weight:600}.banner{padding:1rem;margin:1rem 0;border:3px solid #a00;background:#fee;
font-size:1.1rem;font-weight:700}.ok{padding:1rem;border:2px solid #070;background:#efe}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}"""


def _not_extracted_html(rows: pd.DataFrame | None, transaction: bool) -> list[str]:
    """The rows the builder left out for a data problem: counts per reason, then the rows (ids only)."""
    from calpads.extracts.not_extracted import counts_by_reason

    if rows is None or not len(rows):
        return []
    kept = " A record of theirs that CALPADS already holds is not deleted meanwhile." if transaction else ""
    out = [f"<h2>Not extracted ({len(rows)})</h2><p>Left out of the file because of a data problem in the SIS, "
           f"each with what to fix; they go out in the first run after the fix.{kept} "
           "<a href='not_extracted.csv'>not_extracted.csv</a> lists every one.</p>",
           "<table><thead><tr><th>Reason</th><th>Rows</th></tr></thead><tbody>"]
    out += [f"<tr><td>{_e(reason)}</td><td>{n}</td></tr>" for reason, n in counts_by_reason(rows).items()]
    out.append("</tbody></table>")
    if len(rows) > LISTING_LIMIT:
        out.append(f"<p>Only the first {LISTING_LIMIT} are listed here; not_extracted.csv has all of them.</p>")
    out.append("<table><thead><tr><th>Local Record ID</th><th>Local Student ID</th><th>School</th><th>Reason</th>"
               "</tr></thead><tbody>")
    for r in rows.head(LISTING_LIMIT).itertuples(index=False):
        out.append(f"<tr><td>{_e(r.local_record_id)}</td><td>{_e(r.local_student_id)}</td>"
                   f"<td>{_e(getattr(r, 'school_of_attendance', ''))}</td><td>{_e(r.reason)}</td></tr>")
    out.append("</tbody></table>")
    return out


def _e(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return html.escape(str(value))


def render_html(result: GateResult, *, run_id: str, record_type: str, data_docs: str | None,
                notes: list[str] | None = None, not_extracted: pd.DataFrame | None = None) -> str:
    s = result.summary
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(record_type)} validation report "
           f"- {_e(run_id)}</title><style>{CSS}</style></head><body>",
           f"<h1>{_e(record_type)} validation report</h1>"]
    if s.get("bypass"):
        out.append("<div class='banner' role='alert'>VALIDATION BYPASSED: every record below was published anyway, "
                   "including the records in error. CALPADS will reject them until they are fixed.</div>")
    if s.get("ceiling_exceeded"):
        out.append(f"<div class='banner' role='alert'>TOO MANY ERRORS: {s['records_with_errors']} of "
                   f"{s['records_checked']} records ({s['error_share']:.1%}) fail error rules, more than the "
                   f"{s['ceiling']:.0%} ceiling. "
                   + ("Published anyway (bypass)." if s.get("bypass") else "Nothing from this run was published.")
                   + "</div>")
    if not s.get("rules"):
        out.append("<p class='ok'>Every record passed every rule.</p>")
    out.append("<dl>")
    for label, value in [("Run", run_id), ("Records checked", s["records_checked"]),
                         ("Held back (errors)", s["records_held_back"]),
                         ("Records with errors", s["records_with_errors"]),
                         ("Published with warnings", s["records_warned"]), ("Rules checked", s["rules_checked"]),
                         ("Error ceiling", f"{s['ceiling']:.0%}"), ("Bypass", "yes" if s["bypass"] else "no")]:
        out.append(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>")
    out.append("</dl>")
    if notes:
        out.append("<h2>About this extract</h2><ul class='notes'>"
                   + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    links = ["<a href='findings.csv'>findings.csv</a> (every finding)"]
    if data_docs:
        links.append(f"<a href='{_e(data_docs)}'>Great Expectations Data Docs</a> (the validation in detail)")
    out.append("<p>" + " · ".join(links) + "</p>")

    if s.get("rules"):
        out.append("<h2>Rules that failed</h2><table><thead><tr><th>Rule</th><th>Severity</th><th>Field</th>"
                   "<th>Records</th><th>Rule</th><th>How to fix</th></tr></thead><tbody>")
        order = sorted(s["rules"].items(), key=lambda kv: (kv[1]["severity"] != "error", -kv[1]["count"], kv[0]))
        for rule_id, r in order:
            out.append(f"<tr><td>{_e(rule_id)}</td><td class='{_e(r['severity'])}'>{_e(r['severity'])}</td>"
                       f"<td>{_e(r['field'])}</td><td>{_e(r['count'])}</td><td>{_e(r['rule_text'])}</td>"
                       f"<td>{_e(r['fix'])}</td></tr>")
        out.append("</tbody></table>")

    f = result.findings
    for title, severity, note in [
        ("Records held back (errors)" if not s.get("bypass") else "Records in error (published: bypass)", "error",
         "Not published until fixed in the SIS."),
        ("Records published with warnings", "warning", "Published; check them before certifying."),
    ]:
        part = f[f["severity"] == severity]
        if not len(part):
            continue
        out.append(f"<h2>{_e(title)}</h2><p>{_e(note)} {len(part)} findings on "
                   f"{part['local_student_id'].nunique()} students.</p>")
        if len(part) > LISTING_LIMIT:
            out.append(f"<p>Only the first {LISTING_LIMIT} are listed here; findings.csv has all of them.</p>")
        out.append("<table><thead><tr><th>Local Record ID</th><th>Local Student ID</th><th>School</th><th>Rule</th>"
                   "<th>Field</th><th>Column</th><th>Value</th><th>How to fix</th></tr></thead><tbody>")
        for row in part.head(LISTING_LIMIT).itertuples(index=False):
            out.append(f"<tr><td>{_e(row.local_record_id)}</td><td>{_e(row.local_student_id)}</td>"
                       f"<td>{_e(row.school_of_attendance)}</td><td>{_e(row.rule_id)}</td><td>{_e(row.field)}</td>"
                       f"<td>{_e(row.column)}</td><td>{_e(row.value)}</td><td>{_e(row.fix)}</td></tr>")
        out.append("</tbody></table>")
    try:
        transaction = load_layout(record_type).processing != "replacement"
    except FileNotFoundError:
        transaction = False
    out.extend(_not_extracted_html(not_extracted, transaction))
    if transaction:
        out.append("<h2>Deletes</h2><p>The records this run deletes from CALPADS (D records), with their "
                   "programs and schools, are in <a href='deletes.html'>deletes.html</a> and "
                   "<a href='deletes.csv'>deletes.csv</a>, written when the run is compared with the submission "
                   "history (absent when the run stopped before that).</p>")
    out.append("<p><small>Names, birth dates and SSIDs are never shown in this report: "
               f"their values appear as {_e(MASK)}.</small></p></body></html>\n")
    return "\n".join(out)


def render_deletes_html(listing: pd.DataFrame, summary: dict[str, Any], *, run_id: str, record_type: str) -> str:
    """report/deletes.html: what this run deletes from CALPADS (calpads.history.guard.delete_listing), counted per
    program and school, then every record by Local Record ID (no names, birth dates or SSIDs)."""
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(record_type)} deletes - "
           f"{_e(run_id)}</title><style>{CSS}</style></head><body><h1>{_e(record_type)} deletes</h1>"]
    n = int(summary.get("count") or 0)
    if summary.get("of_enrolled_students") and not summary.get("allow_enrolled_deletes"):
        out.append("<div class='banner' role='alert'>Some deletes are of students who are still enrolled: the run "
                   "stopped and published nothing. Check each record marked Y below in the SIS.</div>")
    out.append(f"<p>Run {_e(run_id)}: <b>{n}</b> record(s) deleted from CALPADS (the _D file); "
               f"{int(summary.get('of_enrolled_students') or 0)} of students still enrolled, "
               f"{int(summary.get('key_changes') or 0)} because a key field changed (the record is sent again with "
               f"its new key). {int(summary.get('kept_because_still_in_sis') or 0)} submitted record(s) were kept "
               "from a delete because the SIS still has them (held back or not extracted this run).</p>")
    for title, counts in (("Per program", summary.get("by_program") or {}),
                          ("Per school", summary.get("by_school") or {})):
        if counts:
            out.append(f"<h2>{_e(title)}</h2><table><tbody>"
                       + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in counts.items())
                       + "</tbody></table>")
    if len(listing):
        out.append("<h2>Records</h2><table><thead><tr><th>Local Record ID</th><th>Local Student ID</th><th>School"
                   "</th><th>Program</th><th>Why</th><th>Student still enrolled</th></tr></thead><tbody>")
        for r in listing.head(LISTING_LIMIT).itertuples(index=False):
            out.append(f"<tr><td>{_e(r.local_record_id)}</td><td>{_e(r.local_student_id)}</td>"
                       f"<td>{_e(r.school_of_attendance)}</td><td>{_e(r.program_code)}</td><td>{_e(r.why)}</td>"
                       f"<td>{_e(r.student_still_enrolled)}</td></tr>")
        out.append("</tbody></table>")
    out.append("</body></html>\n")
    return "\n".join(out)
