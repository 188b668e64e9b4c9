"""CALPADS ODS extracts: read one, compare it with the SIS records, use it as the diff base or seed.

ODS format (calpads-reference.md §1): the input layout, caret-delimited, with the record type
suffixed ``-R`` (``SPRG-R``) and two fields appended: upload date and last-updated date. So an
SPRG ODS line has 27 fields. A line with another field count or record type is rejected with its
line number (the whole file is refused): a skipped line would turn into a wrong delete.

What we do with it (the ``ods_file`` run param):
- **Comparison report** (every mode): per operational key, records in the SIS but not in CALPADS,
  in CALPADS but not in the SIS (inside the run's scope: its schools, program set, students), and
  which fields differ -> ``report/ods_comparison.csv`` and ``report/ods_comparison.html``, counts
  in the manifest and the summary email.
- **Diff base** (submission mode only): the run diffs against the ODS instead of the submission
  history, so its files hold exactly what brings CALPADS in line with the SIS: adds/updates for
  the first and third groups, D records (repeating CALPADS's fields) for the second. This is what
  Aeries calls ODS reconciliation. Why the ODS wins over our history when given: it is what
  CALPADS actually holds, including changes made outside this product (another SIS, the CALPADS
  web UI, an upload that was never saved as submitted). The history is left as it is except for
  what the run saves; to make the history itself match CALPADS, seed it from the same file
  (``python -m calpads.history.cli seed-from-ods``).
- **Seeding** the history (a district starting mid-year): the ODS records are saved as one run,
  ``ods-seed:<sha256 of the file>``, so seeding the same file twice saves nothing the second time.

FERPA: errors name line numbers and counts only; the report identifies records by Local Student
ID, Local Record ID, school, program and dates, and never shows names, birth dates or SSIDs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from calpads.history.diff import HIST_OP_KEY, ScopeFilter
from calpads.history.keys import op_keys, string_frame
from calpads.layouts import Layout

SUFFIX = "-R"
EXTRA_COLUMNS = ("ods_upload_date", "ods_last_updated")
LINE = "ods_line"
MAX_ERRORS_SHOWN = 10
LISTING_LIMIT = 5000
HIDDEN = "(hidden)"

NOT_IN_CALPADS, NOT_IN_SIS, FIELDS_DIFFER = "not_in_calpads", "not_in_sis", "fields_differ"
STATUS_TEXT = {
    NOT_IN_CALPADS: "In the SIS, not in CALPADS: the next submission adds it",
    NOT_IN_SIS: "In CALPADS, not in the SIS: the next submission deletes it (D)",
    FIELDS_DIFFER: "In both, fields differ: the next submission updates it",
}
CSV_NAME, HTML_NAME = "ods_comparison.csv", "ods_comparison.html"


class OdsFormatError(ValueError):
    """The ODS file cannot be used; the message gives line numbers, never field values."""


@dataclass
class OdsFile:
    records: pd.DataFrame        # layout columns (record type without -R, transaction type None) + extras + line
    sha256: str
    name: str

    def layout_records(self, layout: Layout) -> pd.DataFrame:
        return self.records[layout.columns]


# ---------------------------------------------------------------------------------------- reading
def read_bytes(location: str) -> tuple[bytes, str]:
    """The file's bytes and its base name: a local path, a file:// URL, or any fsspec URL."""
    location = (location or "").strip()
    if not location:
        raise OdsFormatError("no ODS file given")
    if location.startswith("file://"):
        path = Path(unquote(urlparse(location).path))
    elif "://" in location:
        import fsspec

        try:
            with fsspec.open(location, "rb") as fh:
                return fh.read(), location.rstrip("/").rsplit("/", 1)[-1]
        except FileNotFoundError:
            raise OdsFormatError(f"ODS file {location} not found") from None
    else:
        path = Path(location)
    if not path.is_file():
        raise OdsFormatError(f"ODS file {path} not found (or not a file)")
    return path.read_bytes(), path.name


def read_ods(location: str, layout: Layout, *, lea: str | None = None, academic_year: str | None = None) -> OdsFile:
    data, name = read_bytes(location)
    return parse_ods(data, layout, name=name, lea=lea, academic_year=academic_year)


def parse_ods(data: bytes, layout: Layout, *, name: str = "ods", lea: str | None = None,
              academic_year: str | None = None) -> OdsFile:
    """Parse an ODS extract. Every line must have the layout's fields + 2 and the record type
    ``<TYPE>-R``; with ``lea``/``academic_year`` every record must belong to them; an operational
    key may appear once. Any violation refuses the whole file, naming the lines."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")   # CALPADS downloads are sometimes Windows-1252
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()                                    # the final line break
    columns = [*layout.columns, *EXTRA_COLUMNS]
    expected_type = layout.record_type + SUFFIX
    errors: list[str] = []
    rows: list[list[str]] = []
    for number, line in enumerate(lines, start=1):
        parts = line.rstrip("\r").split("^")
        if len(parts) != len(columns):
            errors.append(f"line {number}: {len(parts)} fields, expected {len(columns)} ({len(layout.columns)} "
                          f"{layout.record_type} fields + upload date + last-updated date)")
        elif parts[0].strip() != expected_type:
            errors.append(f"line {number}: record type {_safe_code(parts[0])}, expected {expected_type}")
        else:
            rows.append(parts)
            continue
    if errors:
        raise OdsFormatError(_error_text(name, errors))
    frame = pd.DataFrame(rows, columns=columns, dtype=object) if rows else pd.DataFrame(columns=columns, dtype=object)
    for c in columns:
        frame[c] = _blank_to_none(frame[c])
    frame["record_type"] = layout.record_type
    frame["transaction_type"] = None
    frame[LINE] = np.arange(1, len(frame) + 1)
    _check_belongs(frame, name, lea, academic_year, errors)
    _check_unique_keys(frame, layout, name, errors)
    if errors:
        raise OdsFormatError(_error_text(name, errors))
    return OdsFile(frame.reset_index(drop=True), hashlib.sha256(data).hexdigest(), name)


def _safe_code(value: str) -> str:
    v = value.strip()
    return repr(v) if v.replace("-", "").isalnum() and len(v) <= 8 and not v.isdigit() else "(not shown)"


def _error_text(name: str, errors: list[str]) -> str:
    shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
    more = f"; and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
    return (f"ODS file {name} refused ({len(errors)} bad line(s), nothing was used): {shown}{more}. "
            "Download the extract again from CALPADS (ODS, caret-delimited) without editing it.")


def _blank_to_none(values: pd.Series) -> pd.Series:
    stripped = values.astype(object).str.strip()
    return stripped.where(stripped.ne("") & stripped.notna(), None).astype(object)


def _check_belongs(frame: pd.DataFrame, name: str, lea: str | None, year: str | None, errors: list[str]) -> None:
    for column, expected, what in (("reporting_lea", lea, "Reporting LEA"), ("academic_year_id", year,
                                                                            "Academic Year ID")):
        if expected is None or column not in frame.columns:
            continue
        wrong = frame[frame[column].fillna("") != expected]
        for line in wrong[LINE].head(MAX_ERRORS_SHOWN):
            errors.append(f"line {line}: {what} is not {expected}")
        if len(wrong) > MAX_ERRORS_SHOWN:
            errors.append(f"{len(wrong) - MAX_ERRORS_SHOWN} more lines with a {what} other than {expected}")


def _check_unique_keys(frame: pd.DataFrame, layout: Layout, name: str, errors: list[str]) -> None:
    keys = op_keys(frame, layout)
    dup = keys.duplicated(keep=False)
    if dup.any():
        first_line = frame.loc[dup, LINE].groupby(keys[dup]).transform("min")
        later = frame.loc[dup, LINE] != first_line
        for line, first in list(zip(frame.loc[dup, LINE][later], first_line[later], strict=True))[:MAX_ERRORS_SHOWN]:
            errors.append(f"line {line}: same operational key as line {first}")


# ---------------------------------------------------------------------------------------- comparing
@dataclass
class OdsComparison:
    rows: pd.DataFrame                       # one row per difference, sorted (CSV columns)
    counts: dict[str, Any] = field(default_factory=dict)


def compare(sis: pd.DataFrame, ods: pd.DataFrame, layout: Layout, scope: ScopeFilter,
            held_back: pd.DataFrame | None = None) -> OdsComparison:
    """SIS records (the run's extracted records: publishable + ``held_back``) against the ODS
    records (layout columns). CALPADS records outside the run's scope are not compared."""
    held = held_back if held_back is not None else pd.DataFrame()
    cur = pd.concat([string_frame(sis, layout.columns).assign(__held="N"),
                     string_frame(held, layout.columns).assign(__held="Y")], ignore_index=True)
    in_scope = scope.mask(ods, layout) if len(ods) else np.zeros(0, dtype=bool)
    base = ods[in_scope].reset_index(drop=True)
    cur_k = cur.assign(__k=op_keys(cur, layout).to_numpy())
    base_k = base.assign(__k=op_keys(base, layout).to_numpy())
    merged = cur_k.merge(base_k, on="__k", how="outer", suffixes=("", "__ods"), indicator=True)

    updatable = layout.updatable_fields
    kind = merged["_merge"].astype(str)
    both = (kind == "both").to_numpy()
    differs = {c: both & (merged[c].fillna("").astype(str).to_numpy()
                          != merged[c + "__ods"].fillna("").astype(str).to_numpy()) for c in updatable}
    any_diff = np.zeros(len(merged), dtype=bool)
    for d in differs.values():
        any_diff |= d
    keep = ~both | any_diff
    m = merged[keep].reset_index(drop=True)
    kind = kind[keep].reset_index(drop=True)
    differs = {c: d[keep] for c, d in differs.items()}

    hidden = set(layout.pii_columns) | {"ssid"}
    numbers = {f.column: f.number for f in layout.fields}
    labels = pd.Series("", index=m.index, dtype=object)
    sis_vals = pd.Series("", index=m.index, dtype=object)
    ods_vals = pd.Series("", index=m.index, dtype=object)
    for c in updatable:
        d = differs[c]
        if not d.any():
            continue
        labels = labels + np.where(d, f"; {numbers[c]} {c}", "")
        sis_vals = sis_vals + np.where(d, f"; {numbers[c]}=" + _shown(m[c], c in hidden), "")
        ods_vals = ods_vals + np.where(d, f"; {numbers[c]}=" + _shown(m[c + "__ods"], c in hidden), "")
    ods_side = (kind == "right_only").to_numpy()
    sis_side = (kind == "left_only").to_numpy()

    def either(column: str) -> np.ndarray:
        return np.where(ods_side, m[column + "__ods"].to_numpy(dtype=object), m[column].to_numpy(dtype=object))

    rows = pd.DataFrame({
        "status": np.where(sis_side, NOT_IN_CALPADS, np.where(ods_side, NOT_IN_SIS, FIELDS_DIFFER)),
        "school_of_attendance": either("school_of_attendance"),
        "local_student_id": either("local_student_id"),
        "program_code": either("program_code"),
        "membership_start_date": either("membership_start_date"),
        "service_code": either("service_code"),
        "local_record_id_sis": np.where(ods_side, None, m["local_record_id"].to_numpy(dtype=object)),
        "local_record_id_calpads": np.where(sis_side, None, m["local_record_id__ods"].to_numpy(dtype=object)),
        "held_back_by_gate": np.where(ods_side, None, m["__held"].to_numpy(dtype=object)),
        "fields_differ": labels.str[2:].to_numpy(dtype=object),
        "sis_values": sis_vals.str[2:].to_numpy(dtype=object),
        "calpads_values": ods_vals.str[2:].to_numpy(dtype=object),
        "calpads_last_updated": np.where(sis_side, None, m["ods_last_updated"].to_numpy(dtype=object)
                                         if "ods_last_updated" in m.columns else None),
    }, dtype=object)
    for col in rows.columns:
        rows[col] = rows[col].where(rows[col].notna(), None)
    same = int(both.sum() - any_diff.sum())
    columns = ["status", "school_of_attendance", "local_student_id", "program_code", "membership_start_date",
               "service_code", "local_record_id_sis", "local_record_id_calpads", "held_back_by_gate",
               "fields_differ", "sis_values", "calpads_values", "calpads_last_updated"]
    rows = rows[columns]
    if len(rows):
        order = {NOT_IN_CALPADS: 0, NOT_IN_SIS: 1, FIELDS_DIFFER: 2}
        sort_cols = ["school_of_attendance", "local_student_id", "program_code", "membership_start_date",
                     "service_code", "local_record_id_sis", "local_record_id_calpads"]
        rows = (rows.assign(__o=rows["status"].map(order), **{f"__{c}": rows[c].fillna("") for c in sort_cols})
                .sort_values(["__o", *[f"__{c}" for c in sort_cols]], kind="stable")
                .drop(columns=["__o", *[f"__{c}" for c in sort_cols]]).reset_index(drop=True))
    counts = {
        "sis_records": int(len(cur)),
        "calpads_records": int(len(ods)),
        "calpads_records_in_scope": int(len(base)),
        NOT_IN_CALPADS: int((rows["status"] == NOT_IN_CALPADS).sum()) if len(rows) else 0,
        NOT_IN_SIS: int((rows["status"] == NOT_IN_SIS).sum()) if len(rows) else 0,
        FIELDS_DIFFER: int((rows["status"] == FIELDS_DIFFER).sum()) if len(rows) else 0,
        "same": same,
    }
    return OdsComparison(rows, counts)


def _shown(values: pd.Series, hide: bool) -> np.ndarray:
    blank = values.isna() | values.astype(str).eq("")
    text = pd.Series(HIDDEN, index=values.index, dtype=object) if hide else values.astype(str)
    return np.where(blank.to_numpy(), "(blank)", text.to_numpy(dtype=object))


# ---------------------------------------------------------------------------------------- report files
def write_report(comparison: OdsComparison, folder: Path, *, run_id: str, record_type: str,
                 ods_name: str, base: str) -> list[Path]:
    """ods_comparison.csv (every row) and ods_comparison.html (counts + up to LISTING_LIMIT rows),
    owner-only (0600) like the validation report."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    csv_path, html_path = folder / CSV_NAME, folder / HTML_NAME
    _write_private(csv_path, comparison.rows.to_csv(index=False, lineterminator="\n"))
    _write_private(html_path, render_html(comparison, run_id=run_id, record_type=record_type, ods_name=ods_name,
                                          base=base))
    return [csv_path, html_path]


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def render_html(comparison: OdsComparison, *, run_id: str, record_type: str, ods_name: str, base: str) -> str:
    """ods_comparison.html from templates/ods_comparison.html: the counts, then up to LISTING_LIMIT rows."""
    from calpads import templates

    c = comparison.counts
    base_text = ("The files of this run were computed against this ODS file (ODS reconciliation): they hold "
                 "exactly these differences." if base == "ods" else
                 "The files of this run were computed against the submission history, not this ODS file "
                 "(only submission mode uses the ODS as its base).")
    shown = comparison.rows.head(LISTING_LIMIT)
    return templates.render(
        "calpads.history", "ods_comparison.html", record_type=record_type, run_id=run_id, ods_name=ods_name,
        counts={k: int(c.get(k, 0)) for k in ("sis_records", "calpads_records_in_scope", "calpads_records", "same")},
        base_text=base_text, hidden=HIDDEN, csv_name=CSV_NAME, limit=LISTING_LIMIT, total=len(comparison.rows),
        summary=[(STATUS_TEXT[k], int(c.get(k, 0))) for k in (NOT_IN_CALPADS, NOT_IN_SIS, FIELDS_DIFFER)],
        columns=list(shown.columns), rows=list(shown.itertuples(index=False, name=None))) + "\n"


# ---------------------------------------------------------------------------------------- in a run
def compare_for_run(ctx: Any, publishable: pd.DataFrame, held_back: pd.DataFrame,
                    scope: ScopeFilter, lea: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The pipeline's ODS step (``ctx`` is a ``pipeline.RunContext``): read ``ctx.scope.ods_file``,
    compare, write the report files into the run's report folder. Returns the diff base to use
    instead of the history (submission mode; otherwise None) and the counts for the manifest."""
    from calpads.publish import target

    layout = ctx.layout
    ods = read_ods(ctx.scope.ods_file, layout, lea=lea, academic_year=ctx.scope.academic_year)
    comparison = compare(publishable, ods.records, layout, scope, held_back=held_back)
    base = "ods" if ctx.scope.mode == "submission" else "history"
    local = ctx.path("ods_report")
    written = write_report(comparison, local, run_id=ctx.run_id, record_type=layout.record_type, ods_name=ods.name,
                           base=base)
    report_folder = ctx.run_folder / "report"
    target.ensure_folder(report_folder)
    for path in written:
        target.put_file(path, report_folder, path.name)
    counts = {**comparison.counts, "diff_base": base, "file": ods.name, "sha256": ods.sha256,
              "report": str(report_folder / HTML_NAME)}
    return (ods.layout_records(layout) if base == "ods" else None), counts


def seed_history(store: Any, location: str, layout: Layout, *, lea: str, academic_year: str) -> dict[str, Any]:
    """Save an ODS file's records as the submission history (one run, ``ods-seed:<sha256>``).
    Idempotent: the same file again saves nothing. Keys the history holds that the ODS lacks are
    left as they are (counted): a partial ODS must not delete history."""
    ods = read_ods(location, layout, lea=lea, academic_year=academic_year)
    run_id = f"ods-seed:{ods.sha256}"
    store.migrate()
    seen = store.runs(layout.record_type, lea, academic_year)
    already = bool(len(seen)) and run_id in set(seen["run_id"])
    before = store.last_submitted(layout.record_type, lea, academic_year, exclude_run_id=run_id)
    saved = store.save_run(ods.layout_records(layout), layout, lea=lea, academic_year=academic_year, run_id=run_id,
                           params={"source": "ods", "file": ods.name, "sha256": ods.sha256,
                                   "records": len(ods.records)})
    ods_keys = set(op_keys(ods.records, layout))
    history_only = int((~before[HIST_OP_KEY].isin(ods_keys)).sum()) if len(before) else 0
    return {"run_id": run_id, "records_in_file": len(ods.records), "saved": int(saved),
            "already_seeded": already, "history_keys_not_in_ods": history_only}
