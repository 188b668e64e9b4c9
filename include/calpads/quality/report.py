"""The run's validation report: findings.csv, index.html and the GX Data Docs of the validation.

Everything is written owner-only (umask 077; files 0600, folders 0700): the report names
students by Local Record ID / Local Student ID, and never shows names, birth dates or SSIDs
(the gate masks those values; the Data Docs get a redacted copy of GX's result).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from calpads import templates
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
                 notes: list[str] | None = None, not_extracted: pd.DataFrame | None = None,
                 **context: Any) -> dict[str, str]:
    """Write the report files into report_dir; returns {what: path relative to report_dir}. notes: what the
    builder says about this extract (calpads.extracts.registry.Built.notes), shown near the top.
    ``not_extracted`` (the builder's rows left out for a data problem) gets its own table in index.html.
    ``context``: render_html's previous / previous_run / run_link / school_names / manifest."""
    report_dir = Path(report_dir)
    with _private_umask():
        report_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_text(report_dir / "findings.csv", result.findings.to_csv(index=False))
        written = {"findings": "findings.csv"}
        docs_index = build_data_docs(result, report_dir / DOCS_DIR, run_id=run_id, record_type=record_type)
        if docs_index is not None:
            written["data_docs"] = str(docs_index.relative_to(report_dir))
        write_school_csvs(result.findings, report_dir)
        _write_text(report_dir / "index.html", render_html(result, run_id=run_id, record_type=record_type,
                                                           data_docs=written.get("data_docs"), notes=notes,
                                                           not_extracted=not_extracted, **context))
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
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}
.verdict{padding:.7rem 1rem;margin:1rem 0;border-radius:6px;font-size:1.05rem}.verdict.ready{background:#d3f9d8}
.verdict.held{background:#fff3bf}.verdict.failed{background:#ffd6d6}.fixed{color:#1b5e20;font-weight:600}"""


def _not_extracted(rows: pd.DataFrame | None) -> dict[str, Any] | None:
    """The rows the builder left out for a data problem: counts per reason, then the rows (ids only)."""
    from calpads.extracts.not_extracted import counts_by_reason

    if rows is None or not len(rows):
        return None
    return {"total": len(rows), "by_reason": counts_by_reason(rows), "truncated": len(rows) > LISTING_LIMIT,
            "rows": list(rows.head(LISTING_LIMIT).itertuples(index=False))}


def school_csv_name(code: Any) -> str:
    """report/held_back_school_<code>.csv: a school's held-back findings, for its site clerk."""
    text = "" if code is None or (isinstance(code, float) and pd.isna(code)) else str(code)
    return f"held_back_school_{''.join(ch for ch in text if ch.isalnum()) or 'none'}.csv"


def _grouped_errors(part: pd.DataFrame, school_names: dict[str, str] | None) -> dict[str, Any]:
    """Error findings by school, then student (first LISTING_LIMIT findings in that order)."""
    shown = part.sort_values(["school_of_attendance", "local_student_id", "local_record_id", "rule_id"],
                             kind="stable", na_position="last").head(LISTING_LIMIT)
    # Counted and turned into tuples once, and grouped in one pass over the sorted rows (a groupby and an
    # itertuples per school or student cost about a millisecond each: seconds with hundreds of schools).
    per_school = part["school_of_attendance"].astype(str).value_counts()
    tuples = list(shown.itertuples(index=False))
    student_ids = shown["local_student_id"].tolist()
    schools = []
    for code, first, stop in _runs(shown["school_of_attendance"].tolist(), 0, len(tuples)):
        code = "" if pd.isna(code) else str(code)
        students = [{"id": sid, "rows": tuples[a:b]} for sid, a, b in _runs(student_ids, first, stop)]
        schools.append({"code": code, "name": (school_names or {}).get(code, ""), "students": students,
                        "findings": int(per_school.get(code, 0)) if code
                        else int(part["school_of_attendance"].isna().sum()),
                        "csv": school_csv_name(code)})
    return {"schools": schools, "findings": len(part), "students": part["local_student_id"].nunique(),
            "truncated": len(part) > LISTING_LIMIT}


def _runs(keys: list[Any], first: int, stop: int) -> Iterator[tuple[Any, int, int]]:
    """(key, start, stop) of each run of equal keys in keys[first:stop], in order: the groups of sorted rows as
    pandas' ``groupby(sort=False, dropna=False)`` gives them (a blank is one key, named NaN)."""
    start = first
    for i in range(first + 1, stop + 1):
        if i == stop or not _same(keys[i], keys[start]):
            yield (float("nan") if pd.isna(keys[start]) else keys[start]), start, i
            start = i


def _same(a: Any, b: Any) -> bool:
    return (pd.isna(a) and pd.isna(b)) if (pd.isna(a) or pd.isna(b)) else a == b


def report_verdict(summary: dict[str, Any], manifest: dict[str, Any] | None) -> Any:
    from calpads.readiness import verdict

    return verdict(manifest, has_report=True) if manifest else None


def render_html(result: GateResult, *, run_id: str, record_type: str, data_docs: str | None,
                notes: list[str] | None = None, not_extracted: pd.DataFrame | None = None,
                manifest: dict[str, Any] | None = None, previous: set[tuple[str, str]] | None = None,
                previous_run: str | None = None, run_link: str | None = None,
                school_names: dict[str, str] | None = None) -> str:
    """index.html from templates/report.html: the verdict and files (``manifest``, once published), the counts,
    the link back to the Airflow run, what changed since the previous published run (``previous``: its error
    findings as (rule id, Local Record ID)), the rules, the held-back records by school and student (each
    school's CSV beside), the warnings, the rows not extracted and the deletes."""
    from calpads.readiness import rule_lines

    s = result.summary
    f = result.findings
    errors = f[f["severity"] == "error"]
    warned = f[f["severity"] == "warning"]
    now = {(str(r), str(i)) for r, i in zip(errors["rule_id"], errors["local_record_id"], strict=True)}
    try:
        transaction = load_layout(record_type).processing != "replacement"
    except FileNotFoundError:
        transaction = False
    facts = [("Run", run_id), ("Records checked", s["records_checked"]), ("Held back (errors)", s["records_held_back"]),
             ("Records with errors", s["records_with_errors"]), ("Published with warnings", s["records_warned"]),
             ("Rules checked", s["rules_checked"]), ("Error ceiling", f"{s['ceiling']:.0%}"),
             ("Bypass", "yes" if s["bypass"] else "no")]
    changes = None if previous is None else [c for c in rule_lines({"validation": s}, now, previous)
                                             if c.count or c.new or c.fixed]
    return templates.render("calpads.quality", "report.html",
        css=CSS, record_type=record_type, run_id=run_id, s=s, facts=facts, notes=notes or [], data_docs=data_docs,
        rules=sorted((s.get("rules") or {}).items(), key=lambda kv: (kv[1]["severity"] != "error", -kv[1]["count"],
                                                                     kv[0])),
        errors=_grouped_errors(errors, school_names) if len(errors) else None,
        warnings={"rows": list(warned.head(LISTING_LIMIT).itertuples(index=False)), "findings": len(warned),
                  "students": warned["local_student_id"].nunique(), "truncated": len(warned) > LISTING_LIMIT}
        if len(warned) else None,
        not_extracted=_not_extracted(not_extracted),
        transaction=transaction, mask=MASK, limit=LISTING_LIMIT, manifest=manifest,
        verdict=report_verdict(s, manifest), changes=changes, previous_run=previous_run, run_link=run_link) + "\n"


def write_school_csvs(findings: pd.DataFrame, report_dir: Path) -> list[str]:
    """One CSV of held-back (error) findings per school, for the school's clerk; the names written."""
    errors = findings[findings["severity"] == "error"]
    names = []
    for code, part in errors.groupby("school_of_attendance", sort=True, dropna=False):
        name = school_csv_name(None if pd.isna(code) else code)
        _write_text(report_dir / name, part.to_csv(index=False))
        names.append(name)
    return names


def render_deletes_html(listing: pd.DataFrame, summary: dict[str, Any], *, run_id: str, record_type: str) -> str:
    """report/deletes.html from templates/deletes.html: what this run deletes from CALPADS
    (calpads.history.guard.delete_listing), counted per program and school, then every record by Local Record ID
    (no names, birth dates or SSIDs)."""
    return templates.render(
        "calpads.quality", "deletes.html", css=CSS, record_type=record_type, run_id=run_id, s=summary,
        count=int(summary.get("count") or 0), of_enrolled=int(summary.get("of_enrolled_students") or 0),
        key_changes=int(summary.get("key_changes") or 0), kept=int(summary.get("kept_because_still_in_sis") or 0),
        groups=[("Per program", summary.get("by_program") or {}), ("Per school", summary.get("by_school") or {})],
        rows=list(listing.head(LISTING_LIMIT).itertuples(index=False))) + "\n"
