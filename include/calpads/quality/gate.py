"""The quality gate: validate a run's records against the record type's GX suite.

One GX batch, one validation per run: the suite (great_expectations/expectations/<rt>.json)
holds every rule; GX finds the failing rows (result_format COMPLETE, indexed by a row
number column), and this module only turns GX's answer into findings, the records to
publish and the records held back.

Before validating, the gate adds a few ``ctx_`` columns that GX expectations cannot
derive themselves (see ``derived_columns``): typed dates, the run-date limit, the academic
year of the end date, and blank-as-empty text where a rule must treat a blank as a failure
(GX map expectations skip nulls). No rule is decided here.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calpads.dates import calpads_dates
from calpads.layouts import Layout, load_layout
from calpads.quality.suite_builder import default_gx_root, suite_name

log = logging.getLogger(__name__)

DATASOURCE = "calpads_records"     # pandas datasource of great_expectations.yml
BATCH_DEFINITION = "whole_dataframe"
ROW = "ctx_row"                    # row number: the index GX reports failing rows by
REPORT_COLUMNS = ["local_record_id", "local_student_id", "school_of_attendance"]
FINDING_COLUMNS = [*REPORT_COLUMNS, "rule_id", "severity", "field", "column", "value", "rule_text", "fix"]
ALWAYS_PII = ("ssid",)             # identifying although the layout does not flag it
MASK = "(hidden)"
_CACHE: dict[tuple[str, str], Any] = {}


class GateError(RuntimeError):
    """The gate could not check the records (a rule raised, the suite is missing...)."""


@dataclass
class GateResult:
    publishable: pd.DataFrame | None   # None: the caller wrote them itself (calpads.pipeline.gate)
    held_back: pd.DataFrame | None
    findings: pd.DataFrame
    summary: dict[str, Any]
    ceiling_exceeded: bool
    validation_result: Any = field(default=None, repr=False)   # GX ExpectationSuiteValidationResult (raw, has PII)
    pii_columns: tuple[str, ...] = ()


def pii_columns(layout: Layout) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*layout.pii_columns, *(c for c in ALWAYS_PII if c in layout.columns)]))


# --------------------------------------------------------------------------- GX objects
def gx_context(context_root: Path | None = None) -> Any:
    """The committed file context, created once per process (it is slow to build)."""
    import great_expectations as gx

    root = str(Path(context_root or default_gx_root()).resolve())
    key = ("context", root)
    if key not in _CACHE:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        _CACHE[key] = gx.get_context(mode="file", context_root_dir=root)
    return _CACHE[key]


def gx_suite(record_type: str, context_root: Path | None = None) -> Any:
    root = Path(context_root or default_gx_root()).resolve()
    path = root / "expectations" / f"{suite_name(record_type)}.json"
    if not path.exists():
        raise GateError(f"no expectation suite for {record_type} at {path}")
    key = (f"suite:{record_type}", f"{root}:{path.stat().st_mtime_ns}")
    if key not in _CACHE:
        _CACHE[key] = gx_context(root).suites.get(suite_name(record_type))
    return _CACHE[key]


def _batch(record_type: str, frame: pd.DataFrame, context_root: Path | None) -> Any:
    context = gx_context(context_root)
    try:
        asset = context.data_sources.get(DATASOURCE).get_asset(record_type)
        batch_definition = asset.get_batch_definition(BATCH_DEFINITION)
    except Exception as exc:  # the committed great_expectations.yml lacks the asset
        raise GateError(f"GX datasource {DATASOURCE!r} has no dataframe asset {record_type!r} with batch "
                        f"definition {BATCH_DEFINITION!r} (great_expectations.yml)") from exc
    return batch_definition.get_batch(batch_parameters={"dataframe": frame})


# --------------------------------------------------------------------------- frame to validate
def _blank_to_none_coded(values: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """(the values with blank text as None; for text as Parquet hands it, each row's distinct-value code, None
    being -1, as ``pd.factorize`` of the result numbers them up to order: the gate's later steps reuse them)."""
    if isinstance(values.dtype, pd.StringDtype):   # text as Parquet hands it: each distinct text tested once
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = np.asarray(uniques, dtype=object)
        blank = pd.Series(uniques).str.strip().eq("").fillna(True).to_numpy(dtype=bool)
        texts[blank] = None
        codes = np.where(np.append(blank, True)[codes], -1, codes).astype("int32")   # a blank is None: -1
        return pd.Series(np.append(texts, None)[codes], index=values.index, dtype=object), codes
    s = values.astype("object")
    text = s.astype("string")
    blank = s.isna() | text.str.strip().eq("").fillna(True)
    return s.where(~blank, None), None


def _distinct_objects(values: pd.Series | np.ndarray) -> np.ndarray:
    """The values as Python objects, one object per distinct value (missing: None). A chunk's text columns
    repeat a few codes on every row: one str per row would cost hundreds of MB per chunk of records."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.append(np.asarray(uniques, dtype=object), None)[codes]


_dates = calpads_dates


def _text(values: pd.Series) -> pd.Series:
    """Blank as '' (object dtype: pandas 3's arrow strings make GX's per-rule row copies several times slower)."""
    return values.astype("object").where(values.notna(), "").map(str).astype("object")


def _per_distinct(frame: pd.DataFrame, columns: list[str], fn: Callable[[pd.DataFrame], pd.Series]) -> pd.Series:
    """``fn`` of the rows' ``columns``, worked out once per distinct combination of their values and taken back
    to every row (a chunk repeats a few codes and dates on every row)."""
    from calpads.quality.distinct import row_combinations

    inverse, first = row_combinations(frame, columns)
    once = fn(frame.iloc[first][columns].reset_index(drop=True))
    return pd.Series(once.to_numpy()[inverse], index=frame.index, dtype=once.dtype)


def _dates_of(frame: pd.DataFrame, column: str) -> pd.Series:
    return _per_distinct(frame, [column], lambda rows: _dates(rows[column]))


def _text_of(frame: pd.DataFrame, *columns: str) -> pd.Series:
    """The columns' texts (blank as ''), joined by '|'."""
    def joined(rows: pd.DataFrame) -> pd.Series:
        out = _text(rows[columns[0]])
        for c in columns[1:]:
            out = out + "|" + _text(rows[c])
        return out.astype("object")
    return _per_distinct(frame, list(columns), joined)


def derived_columns(frame: pd.DataFrame, run_date: date) -> dict[str, pd.Series]:
    """ctx_ columns the SPRG business rules read (documented in docs/rules.md).

    A date that is blank or not a real CCYYMMDD date becomes NaT, and the pair rules skip
    it (the field's format rule reports it alone)."""
    cols: dict[str, pd.Series] = {}
    if "birth_date" in frame:
        cols["ctx_birth_dt"] = _dates_of(frame, "birth_date")
    if "membership_start_date" in frame:
        start = _dates_of(frame, "membership_start_date")
        cols["ctx_start_dt"] = start
        limit = pd.Timestamp(run_date) + pd.DateOffset(months=6)
        cols["ctx_start_limit"] = pd.Series(limit, index=frame.index, dtype="datetime64[ns]")
    if "membership_end_date" in frame:
        end = _dates_of(frame, "membership_end_date")
        cols["ctx_end_dt"] = end
        first = end.dt.year - (end.dt.month < 7).astype("int64")     # academic years start July 1
        year = first.astype("Int64").astype("string") + "-" + (first + 1).astype("Int64").astype("string")
        cols["ctx_end_academic_year"] = year.astype("object").where(end.notna(), None)
    if "ctx_enrollment_exit_date" in frame:
        cols["ctx_exit_dt"] = _dates_of(frame, "ctx_enrollment_exit_date")
    if {"service_code", "service_academic_year", "academic_year_id"} <= set(frame.columns):
        cols["ctx_service_fields"] = _text_of(frame, "service_code", "service_academic_year", "academic_year_id")
    if "migrant_id" in frame:
        cols["ctx_migrant_id_text"] = _text_of(frame, "migrant_id")
    if "ctx_primary_residence_category" in frame:
        cols["ctx_primary_residence_text"] = _text_of(frame, "ctx_primary_residence_category")
    from calpads.quality.derived import layout_columns  # SENR / STAS / LEAP rules' columns

    cols.update(layout_columns(frame, run_date))
    return cols


def validation_frame(records: pd.DataFrame, layout: Layout, run_date: date, first_row: int = 0) -> pd.DataFrame:
    """Layout columns (blank text -> None) + the builder's ctx_ columns + derived ctx_ columns + row number (of
    the whole run's records: ``first_row`` is this frame's first)."""
    return coded_validation_frame(records, layout, run_date, first_row)[0]


def coded_validation_frame(records: pd.DataFrame, layout: Layout, run_date: date,
                           first_row: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``validation_frame`` and the distinct-value codes of the columns read from Parquet text
    (``_blank_to_none_coded``): in such a column each distinct text is one object already."""
    missing = [c for c in layout.columns if c not in records.columns]
    if missing:
        raise GateError(f"{layout.record_type} records lack layout columns: {', '.join(missing)}")
    names = [*layout.columns, *dict.fromkeys(c for c in records.columns if c.startswith("ctx_")
                                             and c not in layout.columns)]
    data, codes = {}, {}
    for c in names:
        values, coded = _blank_to_none_coded(records[c])
        data[c] = values.to_numpy()
        if coded is not None:
            codes[c] = coded
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(records)), dtype="object")
    for name, values in derived_columns(frame, run_date).items():
        frame[name] = values if values.dtype.kind in "Mf" else values.astype("object")   # f: STAS day sums
        codes.pop(name, None)
    frame[ROW] = np.arange(first_row, first_row + len(frame), dtype="int64")
    return frame, codes


# --------------------------------------------------------------------------- run
CHUNK_ROWS = 250_000   # records validated at a time (calpads.quality.chunks): the gate's memory grows with it
RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW],
                 "return_unexpected_index_query": False}


@dataclass
class Checked:
    """What the suite found in a run's records (``run_gate`` turns it into a GateResult)."""

    findings: pd.DataFrame   # FINDING_COLUMNS + _row
    validation_result: Any
    n: int


def check_records(chunks: Iterable[pd.DataFrame], record_type: str, run_date: date, *, total_rows: int,
                  context_root: Path | None = None) -> Checked:
    """Validate a run's records, given as consecutive chunks (their order is the records' order; ``total_rows``
    records in all), against the record type's suite: records that fit in one chunk against the whole suite at
    once; more, each chunk against the rules that decide a row by its own values and every row at once against
    the others (a key unique across the file), as calpads.quality.chunks describes. Within a chunk, the column
    rules are validated once per distinct combination of the values they read (calpads.quality.distinct)."""
    from calpads.quality.chunks import Part, answer_rank, merge, positions, split_suite
    from calpads.quality.distinct import AcrossChunks, validate_distinct

    layout = load_layout(record_type)
    suite = gx_suite(record_type, context_root)
    if total_rows <= CHUNK_ROWS:
        row_wise, whole = Part(suite, list(range(len(suite.expectations)))), None
    else:
        row_wise, whole = split_suite(suite)
    pii = pii_columns(layout)
    # The columns the other rules read, and those their findings show, kept from every chunk.
    whole_columns = set() if whole is None else (
        suite_columns(whole.suite) | set(REPORT_COLUMNS)
        | {c for e in whole.suite.expectations for c in (e.meta or {}).get("columns") or []})

    def validate(frame: pd.DataFrame, rules: Any) -> Any:
        return _validate(record_type, frame, rules, context_root)

    # Chunked, the column rules are validated once over every chunk's distinct combinations; the other row-wise
    # rules chunk by chunk (``per_chunk``, known once the first chunk is read).
    across = AcrossChunks(row_wise.suite, row=ROW, result_format=RESULT_FORMAT) \
        if whole is not None and row_wise is not None else None
    per_chunk = row_wise if across is None else None
    answers, parts, narrow = [], [], []
    n = 0
    for chunk in chunks:
        frame, codes = coded_validation_frame(chunk.reset_index(drop=True), layout, run_date, first_row=n)
        del chunk
        if across is not None:
            across.add(frame, codes)
            per_chunk = per_chunk or _part_of(row_wise, across.over_rows)
        if per_chunk is not None:
            answers.append(validate(frame, per_chunk.suite) if across is not None else
                           validate_distinct(frame, per_chunk.suite, validate, row=ROW, result_format=RESULT_FORMAT))
            if len(answers) > 1:   # GX's answer names its batch, data included: the merged answer keeps the first's
                answers[-1].meta = {}
            parts.append(_finding_rows(answers[-1], frame, pii, positions(answers[-1], per_chunk), first_row=n))
        if whole is not None:
            narrow.append(_shared_values(frame[[c for c in frame.columns if c in whole_columns or c == ROW]],
                                         shared=set(codes)))
        n += len(frame)
        del frame, codes
    answered_whole: list[tuple[Any, Part]] = []
    if whole is not None:
        _return_freed_memory()   # the chunks' memory, before every row's values are put together
        frame = pd.concat(narrow, ignore_index=True) if len(narrow) > 1 else narrow[0]
        del narrow
        if across is not None and across.positions:
            across_part = _part_of(row_wise, across.positions)
            answer = across.answer(validate)
            failing = across.finding_rows(frame[[c for c in [*REPORT_COLUMNS, ROW] if c in frame.columns]])
            parts.append(_finding_rows(answer, failing, pii, positions(answer, across_part), sparse=True))
            answered_whole.append((answer, across_part))
        whole_answer = validate(frame, whole.suite)
        parts.append(_finding_rows(whole_answer, frame, pii, positions(whole_answer, whole)))
        answered_whole.append((whole_answer, whole))
        del frame
    result = merge(answers, per_chunk, answered_whole, suite, RESULT_FORMAT)
    findings = pd.concat(parts, ignore_index=True) if parts else _no_findings()
    if len(findings):
        # As validating the whole batch at once orders them: row, rule id, then GX's order of answering.
        findings["_rule"] = findings["_rule"].map(answer_rank(suite))
        findings = findings.sort_values(["_row", "rule_id", "_rule"], kind="stable").drop(columns="_rule")
    return Checked(findings[[*FINDING_COLUMNS, "_row"]], result, n)


def _part_of(part: Any, at: list[int]) -> Any:
    """The rules at positions ``at`` of ``part``'s suite as a part of the whole suite (None: no rule)."""
    from calpads.quality.chunks import Part
    from calpads.quality.distinct import subsuite

    if not at:
        return None
    return Part(subsuite(part.suite, [part.suite.expectations[i] for i in at]), [part.positions[i] for i in at])


def _return_freed_memory() -> None:
    """Give the memory the chunks freed back to the system (glibc keeps freed pages of a large Python process;
    the task's peak would otherwise carry them into the next step). A no-op where glibc is not the C library."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _shared_values(frame: pd.DataFrame, shared: Collection[str] = ()) -> pd.DataFrame:
    """The same values, each distinct text once in memory (a school or program code is repeated on many rows):
    what the gate keeps of every chunk for the rules over every row. ``shared``: columns that are so already."""
    out = {}
    for c in frame.columns:
        values = frame[c].to_numpy()
        if values.dtype == object and c not in shared:
            values = _distinct_objects(values)
        out[c] = pd.Series(values, index=frame.index, dtype=frame[c].dtype)   # object stays object (None, not NaN)
    return pd.DataFrame(out, index=frame.index)


def _validate(record_type: str, frame: pd.DataFrame, rules: Any, context_root: Path | None) -> Any:
    # GX copies the frame for every filtered rule: hand it only the columns the rules read, as categoricals where
    # every one of these rules reads the column by equality, membership, null or text tests (in chunks, a key
    # column of the duplicate-key rule is a categorical for the row-wise rules: their answers are the same).
    used = suite_columns(rules)
    batch = _batch(record_type, compact_frame(frame[[c for c in frame.columns if c in used or c == ROW]], rules),
                   context_root)
    with warnings.catch_warnings():
        # GX runs regexes through str.contains; a back-reference needs a group, which pandas warns about.
        warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
        result = batch.validate(rules, result_format=dict(RESULT_FORMAT))
    broken = [r.expectation_config.meta.get("rule_id", r.expectation_config.type)
              for r in result.results if _raised(r.exception_info)]
    if broken:
        raise GateError(f"{record_type} rules could not run: {', '.join(broken)}")
    return result


def record_chunks(records: pd.DataFrame, rows: int | None = None) -> Iterator[pd.DataFrame]:
    """Consecutive chunks of at most ``rows`` records (CHUNK_ROWS); one empty chunk when there are none."""
    rows = rows or CHUNK_ROWS
    for start in range(0, max(len(records), 1), rows):
        yield records.iloc[start:start + rows]


def run_gate(records: pd.DataFrame, record_type: str, run_date: date, *, error_ceiling: float = 0.05,
             bypass: bool = False, context_root: Path | None = None) -> GateResult:
    records = records.reset_index(drop=True)
    checked = check_records(record_chunks(records), record_type, run_date, total_rows=len(records),
                            context_root=context_root)
    is_error = error_mask(checked)
    if bypass:
        publishable, held_back = records, records.iloc[0:0]
    else:
        publishable, held_back = records[~is_error], records[is_error]
    return gate_result(checked, record_type, publishable.reset_index(drop=True), held_back.reset_index(drop=True),
                       error_ceiling=error_ceiling, bypass=bypass)


def error_mask(checked: Checked) -> np.ndarray:
    """True for each record (in order) with an error finding: it is held back unless the run bypasses the gate."""
    findings = checked.findings
    rows = np.unique(findings.loc[findings["severity"] == "error", "_row"].to_numpy(dtype="int64"))
    is_error = np.zeros(checked.n, dtype=bool)
    is_error[rows] = True
    return is_error


def gate_result(checked: Checked, record_type: str, publishable: Any, held_back: Any, *, error_ceiling: float,
                bypass: bool) -> GateResult:
    """The GateResult of checked records (publishable / held back: the records, or what the caller kept of them)."""
    findings, n = checked.findings, checked.n
    error_rows = np.unique(findings.loc[findings["severity"] == "error", "_row"].to_numpy(dtype="int64"))
    warning_rows = np.unique(findings.loc[findings["severity"] == "warning", "_row"].to_numpy(dtype="int64"))
    warned_only = np.setdiff1d(warning_rows, error_rows)
    held = 0 if bypass else len(error_rows)
    share = len(error_rows) / n if n else 0.0
    ceiling_exceeded = share > error_ceiling
    findings = findings.drop(columns="_row").reset_index(drop=True)
    summary = _summary(record_type, checked.validation_result, findings, n=n, errors=len(error_rows),
                       warned=len(warned_only), held_back=held, share=share, ceiling=error_ceiling,
                       ceiling_exceeded=ceiling_exceeded, bypass=bypass)
    log.info("%s gate: %s records, %s with errors (%.1f%%), %s warned only, bypass=%s", record_type, n,
             len(error_rows), share * 100, len(warned_only), bypass)
    return GateResult(publishable, held_back, findings, summary, ceiling_exceeded, checked.validation_result,
                      pii_columns(load_layout(record_type)))


# Expectations and row_condition operators that only test values for equality / membership / text:
# safe on an unordered categorical. Any other use of a column keeps it as object.
CATEGORY_SAFE_TYPES = {
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null", "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set", "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex", "expect_column_value_lengths_to_be_between",
    "expect_column_values_to_be_unique",
}
CATEGORY_SAFE_OPERATORS = {"==", "!=", "IN", "NOT_IN"}


def compact_frame(frame: pd.DataFrame, suite: Any) -> pd.DataFrame:
    """Text columns as pandas categoricals, for speed only (no rule changes).

    GX copies the whole batch frame for every row_condition and every pair rule (pandas
    ``query`` / ``dropna``); copying int8/int16 category codes is several times cheaper than
    copying object pointers, and regex / set checks then run once per distinct value.
    Only columns that every rule reads by equality, set membership, null or text tests are
    converted; columns that a pair rule, an ordering comparison or any other expectation reads
    stay as they are (an unordered categorical cannot be ordered or compared across columns)."""
    keep: set[str] = set()
    for e in suite.expectations:
        cfg = e.configuration
        kw = cfg.kwargs
        if cfg.type not in CATEGORY_SAFE_TYPES:
            keep.update(str(kw[k]) for k in ("column", "column_A", "column_B") if kw.get(k))
            keep.update(kw.get("column_list") or [])
        keep.update(str((node.get("column") or {}).get("name")) for node in _condition_nodes(kw)
                    if node.get("type") == "comparison" and node.get("operator") not in CATEGORY_SAFE_OPERATORS)
    out = frame.copy(deep=False)
    for c in frame.columns:
        if frame[c].dtype == object and c not in keep:
            out[c] = _categorical(frame[c])
    return out


def _categorical(values: pd.Series) -> pd.Categorical:
    """astype("category") without sorting the categories (a cost on high-cardinality ids); text categories as
    pandas strings, so a regex runs vectorised over them."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    kind = "str" if pd.api.types.infer_dtype(uniques, skipna=True) in ("string", "empty") else object
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(uniques, dtype=kind)))


def suite_columns(suite: Any) -> set[str]:
    """Every column an expectation or its row_condition reads."""
    return set().union(*(rule_columns(e) for e in suite.expectations))


def rule_columns(rule: Any) -> set[str]:
    """The columns one expectation and its row_condition read."""
    kw = rule.configuration.kwargs
    used = {str(kw[k]) for k in ("column", "column_A", "column_B") if kw.get(k)}
    used.update(kw.get("column_list") or [])
    used.update(node["column"]["name"] for node in _condition_nodes(kw)
                if isinstance(node.get("column"), dict) and "name" in node["column"])
    return used


def _condition_nodes(kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every node (a dict) of an expectation's ``row_condition`` tree."""
    cond = kwargs.get("row_condition")
    stack = [cond.dict() if hasattr(cond, "dict") else cond]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _raised(info: Any) -> bool:
    """GX reports an exception either flat or per metric ({metric id: {raised_exception: ...}})."""
    if not isinstance(info, dict):
        return False
    if info.get("raised_exception"):
        return True
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _no_findings() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in [*FINDING_COLUMNS, "_row", "_rule"]})


def _findings(result: Any, frame: pd.DataFrame, pii: tuple[str, ...]) -> pd.DataFrame:
    """The findings of one GX answer over ``frame`` (every row), by row and rule id (the afterschool gate's)."""
    out = _finding_rows(result, frame, pii, list(range(len(result.results))))
    if not len(out):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in [*FINDING_COLUMNS, "_row"]})
    return out.sort_values(["_row", "rule_id"], kind="stable")[[*FINDING_COLUMNS, "_row"]]


def _finding_rows(result: Any, frame: pd.DataFrame, pii: tuple[str, ...], rule_positions: list[int],
                  first_row: int = 0, *, sparse: bool = False) -> pd.DataFrame:
    """One row per failing record and rule; ``_row`` the record's row number (``frame`` holds the rows from
    ``first_row`` on; ``sparse``: some rows, in order, named by their ROW column), ``_rule`` the rule's position
    in the suite."""
    parts = []
    for r, rule_position in zip(result.results, rule_positions, strict=True):
        if r.success:
            continue
        meta = r.expectation_config.meta or {}
        rows = np.fromiter((d[ROW] for d in r.result.get("unexpected_index_list") or []), dtype="int64")
        if not len(rows):   # a failed rule must name its rows, or no record could be held back for it
            raise GateError(f"rule {meta.get('rule_id', r.expectation_config.type)} failed without naming the "
                            "failing rows (use a per-row expectation)")
        columns = meta.get("columns") or [r.expectation_config.kwargs.get("column")]
        at = np.searchsorted(frame[ROW].to_numpy(), rows) if sparse else rows - first_row
        part = frame.iloc[at].reindex(columns=REPORT_COLUMNS).copy()   # LEA-level files have no school
        part["_row"] = rows
        part["_rule"] = rule_position
        part["rule_id"] = meta.get("rule_id", r.expectation_config.type)
        part["severity"] = meta.get("severity", "error")
        part["field"] = meta.get("field")
        part["column"] = ", ".join(columns)
        part["value"] = _shown_values(frame.iloc[at], columns, pii)
        part["rule_text"] = meta.get("rule_text")
        part["fix"] = meta.get("fix")
        parts.append(part)
    if not parts:
        return _no_findings()
    return pd.concat(parts, ignore_index=True)


def _shown_values(rows: pd.DataFrame, columns: list[str], pii: tuple[str, ...]) -> np.ndarray:
    """The failing values as the report shows them: PII columns masked, blanks as ''."""
    shown = []
    for c in columns:
        if c not in rows:
            continue
        v = pd.Series(MASK, index=rows.index) if c in pii else _text(rows[c])
        shown.append(v if len(columns) == 1 else c + "=" + v)
    if not shown:
        return np.array([""] * len(rows), dtype=object)
    out = shown[0]
    for v in shown[1:]:
        out = out + "; " + v
    return out.to_numpy(dtype=object)


def _summary(record_type: str, result: Any, findings: pd.DataFrame, *, n: int, errors: int, warned: int,
             held_back: int, share: float, ceiling: float, ceiling_exceeded: bool, bypass: bool) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    if len(findings):
        counts = findings.groupby("rule_id", sort=True).size()
        first = findings.drop_duplicates("rule_id").set_index("rule_id")
        for rule_id, count in counts.items():
            row = first.loc[rule_id]
            rules[str(rule_id)] = {"count": int(count), "severity": str(row["severity"]), "field": row["field"],
                                   "rule_text": row["rule_text"], "fix": row["fix"]}
    return {
        "record_type": record_type,
        "suite": suite_name(record_type),
        "rules_checked": len(result.results),
        "records_checked": n,
        "records_with_errors": errors,
        "records_held_back": held_back,
        "records_warned": warned,            # records with a warning and no error (published)
        "findings": len(findings),
        "error_share": round(share, 6),
        "ceiling": ceiling,
        "ceiling_exceeded": ceiling_exceeded,
        "bypass": bypass,
        "rules": rules,
    }
