"""The stages of one CALPADS file run, importable and testable without a scheduler:

    extract (pull + build) -> gate -> diff -> publish -> save history

Each stage reads what the previous one left in the run's work folder (Parquet
files, which may hold student data and so are created owner-only) and returns
a small JSON-able dict (counts, paths) for XCom. The DAG factory wires them.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from calpads.extracts.common import program_set, sort_records
from calpads.failures import SisUnavailable, WorkFolderError, check_lea, db_errors, failing_part
from calpads.layouts import Layout, load_layout
from calpads.private_files import open_private, replacing, write_private
from calpads.publish import target
from calpads.publish.writer import base_name, render_files
from calpads.run_scope import RunScope

log = logging.getLogger(__name__)

RECORDS = "records.parquet"
NOT_EXTRACTED = "not_extracted.parquet"
PUBLISHABLE = "publishable.parquet"
HELD_BACK = "held_back.parquet"
DIFFED = "diffed.parquet"
ENROLLED = "enrolled_students.parquet"
DELETES_CSV = "deletes.csv"
DELETES_HTML = "deletes.html"
EXTRA_REPORTS = "extra_reports"
STATE = "state.json"


class GateFailed(RuntimeError):
    """Too many records failed error rules: nothing is published."""


@dataclass
class RunContext:
    record_type: str
    dag_id: str
    run_id: str
    scope: RunScope
    work_dir: Path                # this run's work folder (shared storage under Celery)
    publish_root: Any             # ObjectStoragePath (or pathlib.Path in tests)
    lea_code: str | None = None   # the LEA this run is configured for; extract refuses another LEA's SIS (LeaMismatch)

    @property
    def layout(self) -> Layout:
        return load_layout(self.record_type)

    @property
    def run_folder(self) -> Any:
        return target.run_folder(self.publish_root, self.scope.academic_year, self.record_type, self.run_id)

    def path(self, name: str) -> Path:
        return self.work_dir / name

    def state(self) -> dict[str, Any]:
        p = self.path(STATE)
        return json.loads(p.read_text()) if p.exists() else {}

    def update_state(self, **values: Any) -> None:
        state = self.state()
        state.update(values)
        _write_private(self.path(STATE), json.dumps(state, indent=2, sort_keys=True, default=str).encode())


# Work files hold student data: owner-only from their first byte, whole or absent (calpads.private_files).
_private_file = open_private


def _write_private(path: Path, data: bytes) -> None:
    with failing_part(WorkFolderError, f"The work file {path} could not be written"):
        write_private(path, data)


def _to_parquet(df: pd.DataFrame | pa.Table, path: Path) -> None:
    """A frame (without its index), or an Arrow table (a builder's records) as it is."""
    with failing_part(WorkFolderError, f"The work file {path} could not be written"):
        with replacing(path) as fh:
            if isinstance(df, pa.Table):
                pq.write_table(df, fh)
            else:
                df.to_parquet(fh, index=False)


def _row_count(ctx: RunContext, name: str) -> int:
    with failing_part(WorkFolderError, f"The work file {ctx.path(name)} of this run could not be read"):
        return int(pq.ParquetFile(ctx.path(name)).metadata.num_rows)


def _record_chunks(ctx: RunContext, name: str) -> Iterator[pd.DataFrame]:
    """A work file's rows in consecutive chunks (calpads.quality.gate.CHUNK_ROWS), each as pd.read_parquet reads
    them; one empty chunk when it has none."""
    from calpads.quality.gate import CHUNK_ROWS

    with failing_part(WorkFolderError, f"The work file {ctx.path(name)} of this run could not be read"):
        file = pq.ParquetFile(ctx.path(name))
        if file.metadata.num_rows == 0:
            yield file.schema_arrow.empty_table().to_pandas()
            return
        for batch in file.iter_batches(batch_size=CHUNK_ROWS):
            yield pa.Table.from_batches([batch]).to_pandas()


def _split_work_file(ctx: RunContext, name: str, held: np.ndarray, kept_name: str,
                     held_name: str) -> tuple[int, int]:
    """The rows of a work file in two work files, in their order and with its schema: those not ``held`` and
    those ``held``; read, filtered and written as Arrow a chunk at a time (no pandas round trip)."""
    from calpads.quality.gate import CHUNK_ROWS

    counts = [0, 0]
    with failing_part(WorkFolderError, f"The work files {kept_name}, {held_name} could not be written"):
        source = pq.ParquetFile(ctx.path(name))
        with replacing(ctx.path(kept_name)) as kept_fh, replacing(ctx.path(held_name)) as held_fh, \
                pq.ParquetWriter(kept_fh, source.schema_arrow) as kept, \
                pq.ParquetWriter(held_fh, source.schema_arrow) as held_back:
            at = 0
            for batch in source.iter_batches(batch_size=CHUNK_ROWS):
                mask = pa.array(held[at:at + batch.num_rows])
                at += batch.num_rows
                for i, (part, writer) in enumerate(((batch.filter(pc.invert(mask)), kept),
                                                    (batch.filter(mask), held_back))):
                    writer.write_batch(part)
                    counts[i] += part.num_rows
    return counts[0], counts[1]


def _read_parquet(ctx: RunContext, name: str) -> pd.DataFrame:
    """A work file an earlier stage of this run wrote; missing = deleted (retention) or another worker's disk."""
    with _reading(ctx, name):
        return pd.read_parquet(ctx.path(name))


def _read_arrow(ctx: RunContext, name: str, columns: list[str]) -> pa.Table:
    """``columns`` of a work file as Arrow (``_read_parquet``'s errors)."""
    with _reading(ctx, name):
        return pq.read_table(ctx.path(name), columns=columns)


def _reading(ctx: RunContext, name: str) -> Any:
    return failing_part(WorkFolderError, f"The work file {ctx.path(name)} of this run could not be read (was the "
                                         f"run's work folder deleted after the retention period, or is it not "
                                         f"shared by every worker?)")


def prepare_work_dir(ctx: RunContext) -> None:
    """The run's work folder, owner-only (0700): every level this creates, whatever the umask."""
    from calpads.maintenance import private_dirs

    with failing_part(WorkFolderError, f"The work folder {ctx.work_dir} could not be created"):
        private_dirs(ctx.work_dir)


# --------------------------------------------------------------------------- extract
def extract(ctx: RunContext, sis: Any, *, store_engine: sa.Engine | None = None,
            count_tolerance: float | None = None) -> dict[str, Any]:
    """sis: a SQLAlchemy engine on the SIS database, or a registry.ApiSource. The source's adapter stages the
    tables the record type reads into the run's work folder (calpads.staging); the staging gate
    (calpads.quality.staging) checks them and raises StagingCheckFailed before anything is built (comparing row
    counts with the last pull kept in store_engine, calpads_store, when one is given); the builder reads the
    staged tables only. With ctx.lea_code set, a SIS whose district number (PREFS) is another LEA's fails with
    LeaMismatch before the staging gate (which keeps counts per LEA) and again, should a builder report another
    LEA, before any record is written."""
    from calpads.extracts import registry
    from calpads.quality.staging import StagingCheck
    from calpads.staging.protocols import BuildContext
    from calpads.staging.store import StagedTables

    prepare_work_dir(ctx)
    t0 = time.perf_counter()
    if store_engine is not None:   # before a long pull: a missing store fails now, naming the store
        from calpads.history.store import check_reachable

        check_reachable(store_engine)
    spec = registry.record_type(ctx.record_type)
    staged = StagedTables(ctx.work_dir)
    staged.reset()
    check = StagingCheck(ctx.record_type, ctx.scope, ctx.run_id, store_engine, count_tolerance)
    # A database or network error of the pull is the SIS's; the store's (staging counts) and the work
    # folder's are raised as their own PartFailure inside and pass through.
    with failing_part(SisUnavailable, "The SIS could not be read", catch=_sis_errors()):
        registry.adapter_for(sis, ctx.record_type).stage(spec.tables, ctx.scope, staged)
    staged_seconds = round(time.perf_counter() - t0, 2)
    if ctx.lea_code is not None:
        from calpads.extracts.selection import reporting_lea
        from calpads.staging.contract import PREFS

        check_lea(ctx.lea_code, reporting_lea(staged.frame(PREFS)))
    check(staged)   # the staging gate: fails the run before anything is built
    built = spec.build(staged, ctx.scope, BuildContext(store_engine=store_engine))
    check_lea(ctx.lea_code, built.lea)
    _to_parquet(built.records, ctx.path(RECORDS))
    _to_parquet(built.not_extracted, ctx.path(NOT_EXTRACTED))
    ctx.path(ENROLLED).unlink(missing_ok=True)
    if built.enrolled_students is not None:
        _to_parquet(pd.DataFrame({"local_student_id": pd.Series(built.enrolled_students, dtype=object)}),
                    ctx.path(ENROLLED))
    extra = ctx.path(EXTRA_REPORTS)
    with failing_part(WorkFolderError, f"The work folder {ctx.work_dir} could not be written"):
        if extra.exists():
            shutil.rmtree(extra)
        extra.mkdir(mode=0o700)
        for name, frame in built.reports.items():   # builder's side reports -> the report folder
            with _private_file(extra / name) as fh:
                frame.to_csv(fh, index=False)
    ctx.update_state(lea=built.lea, scoped_school_codes=built.scoped_school_codes, staging=check.summary,
                     extract={"notes": list(built.notes), "facts": dict(built.facts)})
    out = {
        "records_extracted": len(built.records),
        "staging_counts": check.summary.get("counts"),
        "not_extracted": len(built.not_extracted),
        "reporting_lea": built.lea,
        "staging_seconds": staged_seconds,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info("Extracted %(records_extracted)s %(rt)s records (%(not_extracted)s not extracted, each with its reason "
             "in the report's not_extracted.csv) in %(seconds)ss", {**out, "rt": ctx.record_type})
    return out


# --------------------------------------------------------------------------- gate
def gate(ctx: RunContext, *, run_date: date, error_ceiling: float) -> dict[str, Any]:
    """The quality gate over the run's records, read and checked a chunk of records at a time
    (calpads.quality.gate.check_records); then the publishable and held-back records are written, again a
    chunk at a time, so that the task's memory grows with a chunk, not with the district."""
    from calpads.extracts.not_extracted import counts_by_reason
    from calpads.quality.gate import check_records, error_mask, gate_result
    from calpads.quality.report import write_report

    t0 = time.perf_counter()
    total = _row_count(ctx, RECORDS)
    checked = check_records(_record_chunks(ctx, RECORDS), ctx.record_type, run_date, total_rows=total)
    is_error = error_mask(checked)
    held = np.zeros(total, dtype=bool) if ctx.scope.bypass_validation else is_error
    kept = _split_work_file(ctx, RECORDS, held, PUBLISHABLE, HELD_BACK)
    result = gate_result(checked, ctx.record_type, None, None, error_ceiling=error_ceiling,
                         bypass=ctx.scope.bypass_validation)
    log.info("Gate: %s records publishable, %s held back", *kept)

    local_report = ctx.path("report")
    not_extracted = _read_parquet(ctx, NOT_EXTRACTED)
    with failing_part(WorkFolderError, f"The validation report could not be written in the work folder {ctx.work_dir}"):
        if local_report.exists():
            shutil.rmtree(local_report)
        local_report.mkdir(mode=0o700)
        write_report(result, local_report, run_id=ctx.run_id, record_type=ctx.record_type,
                     notes=ctx.state().get("extract", {}).get("notes"), not_extracted=not_extracted,
                     **_report_context(ctx))
        if len(not_extracted):
            with _private_file(local_report / "not_extracted.csv") as fh:
                not_extracted.to_csv(fh, index=False)
        if ctx.path(EXTRA_REPORTS).exists():
            for extra in sorted(ctx.path(EXTRA_REPORTS).iterdir()):
                with _private_file(local_report / extra.name) as fh:
                    fh.write(extra.read_bytes())
    # The run folder appears with the report alone (no extract file: nothing is published yet); the
    # publish stage replaces it whole with the report, the files and the manifest.
    folder = ctx.run_folder
    report_folder = folder / "report"
    _, swept = target.publish_folder(ctx.publish_root, folder, lambda tmp: _put_reports(ctx, tmp))
    _note_swept(ctx, swept)

    summary = dict(result.summary)
    summary["not_extracted"] = len(not_extracted)
    summary["not_extracted_by_reason"] = counts_by_reason(not_extracted)
    summary["report"] = str(report_folder / "index.html")
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    ctx.update_state(validation=summary)
    if result.ceiling_exceeded and not ctx.scope.bypass_validation:
        raise GateFailed(
            f"{summary.get('records_held_back')} of {summary.get('records_checked')} {ctx.record_type} records "
            f"failed error rules, more than the {error_ceiling:.0%} ceiling: nothing was published. "
            f"Fix the records listed in the validation report ({summary['report']}) and run again."
        )
    return summary


# --------------------------------------------------------------------------- diff
def diff(ctx: RunContext, store_engine: sa.Engine, *, max_delete_share: float | None = None) -> dict[str, Any]:
    """Transaction types against the history (or, in submission mode with an ``ods_file``, against
    the ODS: see calpads.history.ods). Raises MassDeleteBlocked (calpads.history.guard) before
    anything is written when the deletes exceed ``max_delete_share`` of the records in scope, and
    EnrolledDeleteBlocked when a delete is of a student still enrolled and the run does not allow it.
    Either way the would-be deletes are listed in the run's report/deletes.csv."""
    from calpads.extracts.not_extracted import data_problems
    from calpads.history.diff import RecordsFile, compute_transactions, still_in_sis
    from calpads.history.guard import (
        DEFAULT_MAX_DELETE_SHARE,
        EnrolledDeleteBlocked,
        MassDeleteBlocked,
        check_deletes,
        check_enrolled_deletes,
        delete_summary,
        in_scope_count,
    )
    from calpads.history.store import HistoryStore

    t0 = time.perf_counter()
    layout = ctx.layout
    ctx.path(DIFFED).unlink(missing_ok=True)   # a blocked attempt must not leave an earlier attempt's records
    # The layout's columns only: the builder's ctx_ columns are the gate's, not the history's.
    publishable = RecordsFile(ctx.path(PUBLISHABLE), layout)
    len(publishable)   # a missing work file fails here, before the store is touched
    lea = ctx.state()["lea"]
    store = HistoryStore(store_engine)
    store.migrate()
    # The history as of its latest saved run (the base): a save by another run meanwhile is not half-read.
    base, saved_already = store.history_base(ctx.record_type, lea, ctx.scope.academic_year, ctx.run_id)
    # The history's keys, hashes and the columns the scope filter reads (the other columns of the few rows that may
    # become deletes come with their fields from the log), read by a worker thread while this one computes the
    # records' keys and hashes (none when no run was saved yet): the database (PostgreSQL's COPY runs in the server),
    # the drivers, DuckDB and pyarrow work without holding the GIL.
    with ThreadPoolExecutor(max_workers=1) as worker:
        history = worker.submit(store.last_submitted, ctx.record_type, lea, ctx.scope.academic_year,
                                exclude_run_id=ctx.run_id, as_of=base, state_columns=scope_filter(ctx).columns(layout))
        held_back = pd.read_parquet(ctx.path(HELD_BACK), columns=layout.columns)
        keys = publishable.keys() if base else None
        last = history.result()
    ods_counts = None
    if ctx.scope.ods_file:
        from calpads.history.ods import compare_for_run

        ods_base, ods_counts = compare_for_run(ctx, publishable.rows(), held_back, scope_filter(ctx), lea)
        last = ods_base if ods_base is not None else last
    in_scope = in_scope_count(last, layout, scope_filter(ctx))
    # A record the SIS still has (held back, or not extracted for a data problem) is never turned into a
    # delete, whatever happened to its key fields: matched by key, Local Record ID or record identity.
    not_extracted = data_problems(pd.read_parquet(ctx.path(NOT_EXTRACTED)))
    kept = functools.partial(still_in_sis, held_back=held_back, layout=layout, not_extracted=not_extracted)
    # A replacement-processed file (STAS, LEAP) always carries every record: CALPADS replaces the LEA's data.
    mode = "replacement" if layout.processing == "replacement" and ctx.scope.mode == "submission" else ctx.scope.mode
    # The history rows hold keys and hashes: the fields of those that become deletes are read from the store.
    result = compute_transactions(publishable, layout, last, mode, scope_filter(ctx),
                                  never_delete=kept, read_fields=functools.partial(store.fields_of, layout), keys=keys)
    records = sort_records(result.records, layout)
    listing = _delete_listing(ctx, records[records["transaction_type"] == "D"])
    deletes = delete_summary(listing, kept=result.kept_from_delete, allowed=ctx.scope.allow_enrolled_deletes)
    if layout.processing != "replacement":
        _write_deletes_report(ctx, listing, deletes)
    # For the summary email: "stopped" until both guards pass (a retry that passes overwrites it).
    ctx.update_state(diff={"deletes": {**deletes, "stopped": True}})
    try:
        guard = check_deletes(result.counts["deleted"], in_scope, record_type=ctx.record_type,
                              max_share=DEFAULT_MAX_DELETE_SHARE if max_delete_share is None else max_delete_share,
                              allow_mass_delete=ctx.scope.allow_mass_delete)
        check_enrolled_deletes(listing, record_type=ctx.record_type,
                               allow_enrolled_deletes=ctx.scope.allow_enrolled_deletes)
    except (MassDeleteBlocked, EnrolledDeleteBlocked):
        # A stopped run publishes nothing, but its report folder shows what would have gone (deletes.html).
        _, swept = target.publish_folder(ctx.publish_root, ctx.run_folder, lambda tmp: _put_reports(ctx, tmp))
        _note_swept(ctx, swept)
        raise
    if ctx.scope.save_history and not saved_already:   # held until this run's save (or its failure)
        store.claim_submission(ctx.record_type, lea, ctx.scope.academic_year, ctx.run_id, base)
    ctx.update_state(history_base=base)
    _to_parquet(records, ctx.path(DIFFED))
    out = {**{k: int(v) for k, v in result.counts.items()}, "records_out": len(records),
           "delete_guard": guard.as_dict(), "deletes": deletes, "seconds": round(time.perf_counter() - t0, 2)}
    if ods_counts is not None:
        out["ods_comparison"] = ods_counts
    ctx.update_state(diff=out)
    return out


def _delete_listing(ctx: RunContext, d_records: pd.DataFrame) -> pd.DataFrame:
    """calpads.history.guard.delete_listing of the run's D records; the extracted records' ids and the enrolled
    students are read only when there are deletes."""
    from calpads.history.guard import delete_listing

    if not len(d_records):
        return delete_listing(d_records, pd.DataFrame(columns=["local_record_id"]), None)
    extracted = pd.read_parquet(ctx.path(PUBLISHABLE), columns=["local_record_id"])
    enrolled_path = ctx.path(ENROLLED)
    # to_numpy first: iterating an Arrow-backed column value by value costs seconds on a large district
    enrolled = (set(pd.read_parquet(enrolled_path)["local_student_id"].astype(str).to_numpy(dtype=object))
                if enrolled_path.exists() else None)
    return delete_listing(d_records, extracted, enrolled)


def _write_deletes_report(ctx: RunContext, listing: pd.DataFrame, summary: dict[str, Any]) -> None:
    """report/deletes.csv and deletes.html in the run folder: every D record of the run (ids, school, program, why)
    and the counts, also when a guard then blocks the run, so that the coordinator sees what would go."""
    from calpads.quality.report import render_deletes_html

    html_text = render_deletes_html(listing, summary, run_id=ctx.run_id, record_type=ctx.record_type)
    for name, data in ((DELETES_CSV, listing.to_csv(index=False).encode()), (DELETES_HTML, html_text.encode())):
        _write_private(ctx.path("report") / name, data)   # the publish stage puts the report folder in place


def scope_filter(ctx: RunContext) -> Any:
    from calpads.history.diff import ScopeFilter

    scope, layout = ctx.scope, ctx.layout
    schools = set(scope.schools) or None
    if scope.schools or scope.subdistricts:
        # The schools the pull resolved (schools and sub-districts together). Never widened back to the whole
        # district: an empty set means no school is in scope, so nothing may be deleted.
        schools = set(ctx.state().get("scoped_school_codes", []))
    programs = set(program_set(layout, scope)) if "program_code" in layout.columns else None
    return ScopeFilter(schools=schools, programs=programs, students=set(scope.students) or None)


# --------------------------------------------------------------------------- publish
def publish(ctx: RunContext) -> dict[str, Any]:
    """The run folder, whole or not at all (calpads.publish.target.publish_folder): the validation report,
    the extract files and the manifest listing them, which is written last."""
    t0 = time.perf_counter()
    layout = ctx.layout
    records = _read_arrow(ctx, DIFFED, layout.columns)    # Arrow text: no Python object per value
    state = ctx.state()
    lea = state["lea"]
    local_out = ctx.path("files")
    with failing_part(WorkFolderError, f"The extract files could not be written in the work folder {ctx.work_dir}"):
        if local_out.exists():
            shutil.rmtree(local_out)
        local_out.mkdir(mode=0o700)
        files = render_files(records, layout, local_out, base_name(layout, lea, ctx.scope.academic_year))
    folder = ctx.run_folder

    def fill(tmp: Any) -> dict[str, Any]:
        _put_reports(ctx, tmp)
        out = _publish_into(ctx, tmp, files, state, lea, t0)
        return {**out, "folder": str(folder)}

    out, swept = target.publish_folder(ctx.publish_root, folder, fill)
    _note_swept(ctx, swept)
    ctx.update_state(published=out)
    return out


def _put_reports(ctx: RunContext, folder: Any) -> None:
    """The run's validation report (and its ODS comparison, when the run had one) from the work folder."""
    report = folder / "report"
    target.ensure_folder(report)
    target.put_tree(ctx.path("report"), report)
    if ctx.scope.ods_file and ctx.path("ods_report").is_dir():
        target.put_tree(ctx.path("ods_report"), report)


def _note_swept(ctx: RunContext, swept: list[dict[str, Any]]) -> None:
    """What the sweep removed goes to the run's state: the summary email names it."""
    if swept:
        known = ctx.state().get("swept", [])
        ctx.update_state(swept=known + [s for s in swept if s not in known])


def _sis_errors() -> tuple[type[BaseException], ...]:
    import requests

    return (*db_errors(), requests.ConnectionError, requests.Timeout)


def _publish_into(ctx: RunContext, folder: Any, files: list, state: dict[str, Any], lea: str,
                  t0: float) -> dict[str, Any]:
    layout = ctx.layout
    for f in files:
        target.put_file(Path(f.local_path), folder, f.name)

    by_kind = {f.kind: f.records for f in files}
    full = by_kind.get("full", 0)
    split_total = sum(n for k, n in by_kind.items() if k != "full") if layout.processing != "replacement" else full
    validation = state.get("validation", {})
    extract = state.get("extract", {})
    manifest = {
        **extract.get("facts", {}),    # what the builder records, e.g. STAS's counted_through; never a key below
        "record_type": ctx.record_type,
        "dag_id": ctx.dag_id,
        "run_id": ctx.run_id,
        "reporting_lea": lea,
        "academic_year": ctx.scope.academic_year,
        "params": ctx.scope.to_dict(),
        "files": [f.manifest_entry() for f in files],
        "counts": {
            "records_in_full_file": full,
            "records_in_split_files": split_total,
            "split_files_add_up": full == split_total,
            "deletes": by_kind.get("D", 0),
            "diff": _without_timings(state.get("diff", {})),
        },
        "validation": _without_timings(validation),
        "notes": extract.get("notes", []),
        "bypass_validation": ctx.scope.bypass_validation,
        "upload": "Upload the _AU file(s) and the _D file; the file without suffix is for checking counts only."
        if layout.processing != "replacement" else "Upload the file: replacement processing, it replaces the "
        "LEA's records of this academic year.",
    }
    if ctx.scope.bypass_validation:
        manifest["WARNING"] = ("Validation was BYPASSED for this run: records that fail CALPADS rules were "
                               "published. Check the report before uploading.")
    if not manifest["counts"]["split_files_add_up"]:
        raise RuntimeError(f"internal error: split files hold {split_total} records, the full file {full}")
    _report_with_manifest(ctx, folder, manifest)   # the report opens with the verdict and the files
    target.put_json(manifest, folder, "manifest.json")
    return {"folder": str(folder), "files": [f.name for f in files], "records": full,
            "seconds": round(time.perf_counter() - t0, 2)}


def _report_context(ctx: RunContext) -> dict[str, Any]:
    """What the validation report shows beyond the gate's result: the previous published run's held-back records
    (what changed since) and the link back to the Airflow run through the UI (the CALPADS page serves the report
    at <ui>/calpads/files/<year>/<RT>/<run>/report/, six levels below the UI's root)."""
    from urllib.parse import quote

    from calpads.readiness import error_findings, run_folders

    own = ctx.run_folder.name
    try:
        previous = next((f for f in run_folders(ctx.publish_root, ctx.scope.academic_year, ctx.record_type)
                         if f.name != own and (f / "manifest.json").exists()), None)
        before = error_findings(previous / "report") if previous is not None else None
    except OSError as exc:   # an unreadable earlier run costs the comparison only
        log.warning("The previous run's findings could not be read (%s): no comparison in the report", exc)
        previous, before = None, None
    return {"previous": before, "previous_run": previous.name if previous is not None else None,
            "run_link": f"../../../../../../dags/{quote(ctx.dag_id, safe='')}/runs/{quote(ctx.run_id, safe='')}",
            "school_names": _school_names(ctx)}


def _school_names(ctx: RunContext) -> dict[str, str]:
    """CDS school code -> the school's name in the SIS (the run's staged SCHOOLS), for the report's worklist."""
    from calpads.staging.contract import SCHOOLS
    from calpads.staging.store import StagedTables

    staged = StagedTables(ctx.work_dir)
    if not staged.has(SCHOOLS):
        return {}
    try:
        schools = staged.table(SCHOOLS).select(["alternate_school_number", "name"]).to_pylist()
    except (WorkFolderError, KeyError) as exc:   # names are a convenience of the report
        log.warning("School names not shown in the report: %s", type(exc).__name__)
        return {}
    return {str(r["alternate_school_number"]): str(r["name"]) for r in schools
            if r["alternate_school_number"] and r["name"]}


def _report_with_manifest(ctx: RunContext, folder: Any, manifest: dict[str, Any]) -> None:
    """report/index.html again, now with the run's verdict and files at the top (the gate wrote it before)."""
    from types import SimpleNamespace

    from calpads.quality.report import render_html

    report = ctx.path("report")
    state = ctx.state()
    findings = pd.read_csv(report / "findings.csv", dtype=str)
    result = SimpleNamespace(summary=state["validation"], findings=findings)
    data_docs = "data_docs/index.html" if (report / "data_docs" / "index.html").exists() else None
    page = render_html(result, run_id=ctx.run_id, record_type=ctx.record_type, data_docs=data_docs,
                       notes=state.get("extract", {}).get("notes"), not_extracted=_read_parquet(ctx, NOT_EXTRACTED),
                       manifest=manifest, **_report_context(ctx))
    _write_private(report / "index.html", page.encode())
    target.put_file(report / "index.html", folder / "report", "index.html")


def _without_timings(d: dict[str, Any]) -> dict[str, Any]:
    """The manifest must be byte-identical when a run is repeated: no wall-clock figures in it."""
    return {k: v for k, v in d.items() if k != "seconds"}


# --------------------------------------------------------------------------- history
def save_history(ctx: RunContext, store_engine: sa.Engine) -> dict[str, Any]:
    from calpads.history.store import HistoryStore

    if not ctx.scope.save_history:
        return {"saved": 0, "reason": "save_history is off (or the mode never saves)"}
    records = _read_arrow(ctx, DIFFED, ctx.layout.columns)    # Arrow: no Python object per value
    state = ctx.state()
    if "history_base" not in state:
        raise WorkFolderError(f"The work folder {ctx.work_dir} does not say which history this run compared "
                              f"against: nothing saved. Clear the whole run to compare and publish again.")
    store = HistoryStore(store_engine)
    store.migrate()
    saved = store.save_run(records, ctx.layout, lea=state["lea"],
                           academic_year=ctx.scope.academic_year, run_id=ctx.run_id, params=ctx.scope.to_dict(),
                           expected_base=int(state["history_base"]))
    ctx.update_state(history_saved=True)
    return {"saved": int(saved)}


def release_submission(ctx: RunContext, store_engine: sa.Engine) -> bool:
    """After a failed run: give up its claim on the submission history (taken by its diff), so that another
    run need not wait for the lease to expire. Its own save, if cleared later, still checks the history."""
    from calpads.history.store import HistoryStore

    lea = ctx.state().get("lea")
    if not ctx.scope.save_history or not lea:
        return False
    return HistoryStore(store_engine).release_submission(ctx.record_type, lea, ctx.scope.academic_year, ctx.run_id)
