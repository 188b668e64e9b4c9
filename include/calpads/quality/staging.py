"""The staging gate: checks of the staged SIS tables (calpads.staging) of every record type, before any record
or file is built.

The rules live in GX suites like the record rules (great_expectations/expectations/
staging_students.json, staging_programs.json; rule id, severity, plain text, fix and a
``message`` template in each expectation's meta). The frames handed to GX hold local ids
only (STUDENTS.ID / DCID, program row ID, school number): no name, birth date or SSID
can reach a result, a log line or an alert.

- Row counts against the last accepted pull of the same scope (``calpads_staging_counts``
  in the calpads_store database): a drop beyond the tolerance (default 20%, config
  ``[calpads] staging_count_tolerance``) is an error.
- No duplicate keys: STUDENTS.ID, STUDENTS.DCID, S_CA_STU_CALPADSPROGRAMS_C.ID.
- Referential integrity: every program row belongs to a staged student (its STUDENTSDCID) and a school of
  the SCHOOLS table (record types that read no programs check the students only).

An error fails the extract task with ``StagingCheckFailed`` (its text is ours: the
failure email shows it). A run whose params allow a mass delete (``allow_mass_delete``:
the coordinator checked that the shrink is real) accepts a count drop as a warning, and
its counts become the new baseline.

Why a table of our own, created if missing, rather than an Alembic revision in
calpads.history: the history store's migrations belong to another module and change
concurrently; a second revision from here could give Alembic two heads and stop every
history migration. The table is append-only, tiny, and read by this module only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from calpads.failures import store_errors
from calpads.quality.gate import DATASOURCE, ROW, GateError, _batch, _raised, gx_context
from calpads.quality.suite_builder import default_gx_root
from calpads.staging.store import StagedTables

log = logging.getLogger(__name__)

ASSET = "STAGING"                 # dataframe asset of great_expectations.yml for every staging frame
SUITES = {"students": "staging_students", "programs": "staging_programs"}
DEFAULT_TOLERANCE = 0.20
EXAMPLES = 5                      # local ids quoted in a message
_SUITE_CACHE: dict[tuple[str, str], Any] = {}


class StagingCheckFailed(RuntimeError):
    """The SIS pull failed a staging rule: nothing was built. The text says what and what to do (no student data)."""


@dataclass
class StagingFinding:
    rule_id: str
    severity: str
    table: str
    count: int
    message: str
    fix: str
    examples: list[str] = field(default_factory=list)

    def text(self) -> str:
        return f"{self.message} {self.fix}"


@dataclass
class StagingResult:
    findings: list[StagingFinding]
    counts: dict[str, int]
    previous: dict[str, int] | None
    tolerance: float

    @property
    def errors(self) -> list[StagingFinding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[StagingFinding]:
        return [f for f in self.findings if f.severity != "error"]

    def summary(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts), "previous_counts": self.previous, "count_tolerance": self.tolerance,
            "passed": not self.errors,
            "rules": {f.rule_id: {"count": f.count, "severity": f.severity, "message": f.message, "fix": f.fix}
                      for f in self.findings},
        }


# --------------------------------------------------------------------------- frames
def local_ids(values: pd.Series) -> np.ndarray:
    """Ids as text ('17', never '17.0'), blanks as None: SQL hands ints, APIs text, a NULL makes floats."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("int64").astype(str).to_numpy(dtype=object)

    def one(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float | np.floating) and float(v).is_integer():
            return str(int(v))
        text = str(v).strip()
        return text or None

    return np.array([one(v) for v in values.tolist()], dtype=object)


def staging_frames(staged: StagedTables) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
    """(students, programs or None when the record type stages none, known school numbers) from the staged
    tables (calpads.staging): ids only. A program's student_id is the STUDENTS.ID of its STUDENTSDCID (None when
    no staged student has that DCID)."""
    from calpads.staging import contract

    # The id columns only, read for this check and not kept (the builder reads the tables again, by group).
    s = staged.table(contract.STUDENTS, ["id", "dcid"]).to_pandas()
    school_numbers = staged.frame(contract.SCHOOLS)["school_number"]
    p = staged.table(contract.PROGRAMS, ["id", "studentsdcid", "schoolid"]).to_pandas() \
        if staged.has(contract.PROGRAMS) else None
    every = [s["id"], s["dcid"], school_numbers, *([] if p is None else [p["id"], p["studentsdcid"], p["schoolid"]])]
    if all(pd.api.types.is_integer_dtype(c.dtype) for c in every):
        return _integer_frames(s, school_numbers, p)   # no blank id: compared as numbers, not as text
    students = pd.DataFrame({"student_id": local_ids(s["id"]), "dcid": local_ids(s["dcid"])})
    del s
    schools = [v for v in local_ids(school_numbers) if v is not None]
    if p is None:
        return students, None, schools
    by_dcid = dict(zip(students["dcid"], students["student_id"], strict=True))
    dcids = pd.Series(local_ids(p["studentsdcid"]), dtype=object)
    programs = pd.DataFrame({"program_id": local_ids(p["id"]),
                             "student_id": dcids.map(by_dcid).astype(object).to_numpy(),
                             "schoolid": local_ids(p["schoolid"])})
    return students, programs, schools


def _integer_frames(s: pd.DataFrame, school_numbers: pd.Series,
                    p: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame | None, list[int]]:
    """staging_frames of integer ids without a blank, as int64 (no Python string per id: 2.9M program rows at
    500k students). A program's student_id is that of the last student with its DCID, as the text path's
    look-up gives it; <NA> when none."""
    sid, dcid = s["id"].to_numpy(dtype="int64"), s["dcid"].to_numpy(dtype="int64")
    students = pd.DataFrame({"student_id": sid, "dcid": dcid})
    schools = [int(v) for v in school_numbers.to_numpy(dtype="int64")]
    if p is None:
        return students, None, schools
    order = np.argsort(dcid, kind="stable")
    wanted = p["studentsdcid"].to_numpy(dtype="int64")
    at = np.searchsorted(dcid[order], wanted, side="right") - 1     # the last student with that DCID
    at_ok = np.clip(at, 0, None)
    found = (at >= 0) & (dcid[order][at_ok] == wanted) if len(dcid) else np.zeros(len(wanted), dtype=bool)
    student_of = sid[order][at_ok] if len(dcid) else np.zeros(len(wanted), dtype="int64")
    programs = pd.DataFrame({"program_id": p["id"].to_numpy(dtype="int64"),
                             "student_id": pd.arrays.IntegerArray(student_of, ~found),
                             "schoolid": p["schoolid"].to_numpy(dtype="int64")})
    return students, programs, schools


# --------------------------------------------------------------------------- GX
def staging_suite(name: str, context_root: Path | None = None) -> Any:
    root = Path(context_root or default_gx_root()).resolve()
    path = root / "expectations" / f"{name}.json"
    if not path.exists():
        raise GateError(f"no staging expectation suite {name} at {path}")
    key = (name, f"{root}:{path.stat().st_mtime_ns}")
    if key not in _SUITE_CACHE:
        _SUITE_CACHE[key] = gx_context(root).suites.get(name)
    return _SUITE_CACHE[key]


def _validate(table: str, frame: pd.DataFrame, params: dict[str, Any], context_root: Path | None) -> Any:
    frame = frame.reset_index(drop=True)
    # ids as categoricals: GX hashes the whole frame for the batch id, far faster on codes than on strings
    frame = frame.astype({c: "category" for c in frame.columns if frame[c].dtype == object})
    frame[ROW] = np.arange(len(frame), dtype="int64")
    batch = _batch(ASSET, frame, context_root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            result = batch.validate(staging_suite(SUITES[table], context_root), expectation_parameters=params,
                                    result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW],
                                                   "return_unexpected_index_query": False})
    finally:
        _release_batches(context_root)
    broken = [r.expectation_config.meta.get("rule_id", r.expectation_config.type)
              for r in result.results if _raised(r.exception_info)]
    if broken:
        raise GateError(f"staging rules could not run: {', '.join(broken)}")
    return result


def _release_batches(context_root: Path | None) -> None:
    """Let go of the frames GX's execution engine keeps of the batches it validated (it keeps the last one for
    as long as the context lives: the staged ids, about 100 MB at 500k students, through the whole build)."""
    manager = gx_context(context_root).data_sources.get(DATASOURCE).get_execution_engine().batch_manager
    manager.reset_batch_cache()
    manager.batch_data_cache.clear()


def min_rows(previous: int | None, tolerance: float) -> int:
    """The smallest count within the tolerance: a drop of exactly the tolerance still passes."""
    if not previous:
        return 0
    return max(0, math.ceil(previous * (1.0 - tolerance) - 1e-9))


def lookups(programs: pd.DataFrame, student_ids: pd.Series, school_numbers: list[str]) -> pd.DataFrame:
    """programs + ctx_student_known / ctx_school_known ("Y"/"N"): the lookups GX cannot do across frames.

    (A value_set of every student id as a suite parameter would be the direct GX way, but GX copies
    the expectation's kwargs dozens of times per validation: minutes for 300,000 ids.)"""
    out = programs.copy()
    out["ctx_student_known"] = _yes_no(programs["student_id"].isin(student_ids.dropna()))
    out["ctx_school_known"] = _yes_no(programs["schoolid"].isin(school_numbers))
    return out


def _yes_no(flags: pd.Series) -> pd.Series:
    """"Y"/"N" as a categorical of the two, built from its codes (no text per row)."""
    codes = np.where(flags.to_numpy(dtype=bool), 0, 1).astype(np.int8)
    return pd.Series(pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(["Y", "N"])), index=flags.index)


def check_frames(students: pd.DataFrame, programs: pd.DataFrame | None, school_numbers: list[str], *,
                 previous: dict[str, int] | None = None, tolerance: float = DEFAULT_TOLERANCE,
                 accept_count_drop: bool = False, context_root: Path | None = None) -> StagingResult:
    """Validate the staged frames (local ids as text) against the staging suites; programs None: the record
    type stages no programs."""
    if not 0.0 <= tolerance <= 1.0:
        raise GateError(f"staging_count_tolerance must be a share between 0 and 1, not {tolerance}")
    frames = {"students": students[["student_id", "dcid"]]}
    if programs is not None:
        frames["programs"] = lookups(programs[["program_id", "student_id", "schoolid"]], students["student_id"],
                                     school_numbers)
    counts = {t: len(f) for t, f in frames.items()}
    findings: list[StagingFinding] = []
    for table, frame in frames.items():
        prev = (previous or {}).get(table)
        result = _validate(table, frame, {"min_rows": min_rows(prev, tolerance)}, context_root)
        for r in result.results:
            if r.success:
                continue
            findings.append(_finding(r, table, frame, counts[table], prev, accept_count_drop))
    return StagingResult(findings, counts, previous, tolerance)


def _finding(r: Any, table: str, frame: pd.DataFrame, count: int, previous: int | None,
             accept_count_drop: bool) -> StagingFinding:
    cfg = r.expectation_config
    meta = cfg.meta or {}
    rule_id = meta.get("rule_id", cfg.type)
    severity = meta.get("severity", "error")
    key = "program_id" if table == "programs" else (meta.get("columns") or ["student_id"])[0]
    if cfg.type == "expect_table_row_count_to_be_between":
        drop = 1.0 - count / previous if previous else 0.0
        values = {"count": count, "previous": previous or 0, "drop": drop}
        examples: list[str] = []
        if accept_count_drop:
            severity = "warning"
    else:
        rows = [d[ROW] for d in r.result.get("unexpected_index_list") or []]
        if not rows:
            raise GateError(f"staging rule {rule_id} failed without naming the failing rows")
        ids = frame.iloc[rows][key]
        examples = [str(v) for v in dict.fromkeys(ids.dropna())][:EXAMPLES]
        shown = ", ".join(examples) + (", ..." if ids.nunique() > len(examples) else "")
        values = {"count": len(rows), "examples": shown or "blank"}
    message = meta.get("message", meta.get("rule_text", rule_id)).format(**values)
    return StagingFinding(rule_id, severity, table, int(values["count"]), message, meta.get("fix", ""), examples)


# --------------------------------------------------------------------------- last night's counts
_metadata = sa.MetaData()
COUNTS = sa.Table(
    "calpads_staging_counts", _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("record_type", sa.String(32), nullable=False),
    sa.Column("reporting_lea", sa.String(16), nullable=False),
    sa.Column("academic_year", sa.String(9), nullable=False),
    sa.Column("scope_key", sa.String(64), nullable=False),    # what the pull covers (see scope_key)
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("table_name", sa.String(32), nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),        # passed (or drop accepted): a baseline
    sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_calpads_staging_counts_scope", "record_type", "reporting_lea", "scope_key", "id"),
)


def scope_key(scope: Any) -> str:
    """Runs are compared only with runs that pull the same thing (a one-school run is not a drop)."""
    d = scope.to_dict() if hasattr(scope, "to_dict") else dict(scope)
    keep = ("record_type", "academic_year", "start_date", "end_date", "submission", "programs", "schools",
            "subdistricts", "students")
    text = json.dumps({k: d.get(k) for k in keep}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class CountStore:
    """Row counts of each pull, per scope; the baseline is the latest accepted pull of another run."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._ready = False

    def ensure(self) -> None:
        if self._ready:
            return
        try:
            _metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.SQLAlchemyError:
            # Another task created it at the same moment: fine if it exists now.
            if not sa.inspect(self.engine).has_table(COUNTS.name):
                raise
        self._ready = True

    @store_errors("read the last pull's counts")
    def previous(self, *, record_type: str, lea: str, key: str, run_id: str) -> dict[str, int] | None:
        self.ensure()
        c = COUNTS.c
        where = (c.record_type == record_type, c.reporting_lea == lea, c.scope_key == key, c.accepted.is_(True),
                 c.run_id != run_id)
        with self.engine.connect() as conn:
            last = conn.execute(sa.select(c.run_id).where(*where).order_by(c.id.desc()).limit(1)).scalar()
            if last is None:
                return None
            rows = conn.execute(sa.select(c.table_name, c.row_count).where(*where[:3], c.run_id == last)).all()
        return {t: int(n) for t, n in rows}

    @store_errors("save this pull's counts")
    def save(self, *, record_type: str, lea: str, academic_year: str, key: str, run_id: str,
             counts: dict[str, int], accepted: bool) -> None:
        """This run's counts (a retried attempt replaces its earlier attempt's rows)."""
        self.ensure()
        c = COUNTS.c
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(COUNTS).where(c.record_type == record_type, c.reporting_lea == lea,
                                                 c.scope_key == key, c.run_id == run_id))
            conn.execute(sa.insert(COUNTS), [
                dict(record_type=record_type, reporting_lea=lea, academic_year=academic_year, scope_key=key,
                     run_id=run_id, table_name=t, row_count=int(n), accepted=accepted, pulled_at=now)
                for t, n in counts.items()])


# --------------------------------------------------------------------------- the pipeline's hook
class StagingCheck:
    """The staging gate of every record type: calpads.pipeline.extract calls it with the staged tables before
    the builder runs."""

    def __init__(self, record_type: str, scope: Any, run_id: str, store_engine: sa.Engine | None = None,
                 tolerance: float | None = None, context_root: Path | None = None):
        self.record_type = record_type
        self.scope = scope
        self.run_id = run_id
        self.store = CountStore(store_engine) if store_engine is not None else None
        self.tolerance = DEFAULT_TOLERANCE if tolerance is None else float(tolerance)
        self.context_root = context_root
        self.summary: dict[str, Any] = {}

    def __call__(self, staged: StagedTables) -> None:
        from calpads.extracts.selection import reporting_lea
        from calpads.staging.contract import PREFS

        students, programs, schools = staging_frames(staged)
        lea = reporting_lea(staged.frame(PREFS))
        key = scope_key(self.scope)
        previous = None
        if self.store is not None:
            previous = self.store.previous(record_type=self.record_type, lea=lea, key=key, run_id=self.run_id)
        accept = bool(getattr(self.scope, "allow_mass_delete", False))
        result = check_frames(students, programs, schools, previous=previous, tolerance=self.tolerance,
                              accept_count_drop=accept, context_root=self.context_root)
        if self.store is not None:
            self.store.save(record_type=self.record_type, lea=lea, academic_year=self.scope.academic_year,
                            key=key, run_id=self.run_id, counts=result.counts, accepted=not result.errors)
        self.summary = result.summary()
        log.info("Staging gate: pulled %s (last accepted pull: %s, tolerance %.0f%%)", result.counts,
                 previous if previous is not None else "none", self.tolerance * 100)
        for f in result.warnings:
            log.warning("Staging %s (%s, accepted for this run): %s", f.rule_id, f.severity, f.message)
        for f in result.errors:
            log.error("Staging %s: %s", f.rule_id, f.text())
        if result.errors:
            raise StagingCheckFailed(" ".join(f.text() for f in result.errors))
