"""Validated write-back of afterschool participation into the SIS (the guide: "validate before
writing ... map to correct SIS fields ... use valid code values").

The SIS target is ``U_AFTERSCHOOL_PARTICIPATION`` (sql/sis/0001_u_afterschool_participation*.sql,
created by the district with ``python -m calpads.afterschool.sis_migrate``; never by the pipeline):
one row per student, date and program.

1. ``plan``: the staged sessions become the rows the SIS should hold; compared with the rows it
   holds, each is an insert, an update (school, minutes or source hash changed) or unchanged.
   Rows the platform no longer has are never deleted: the reconciliation reports them.
2. ``validate``: required fields, valid ids/codes/ranges, logical consistency (the date inside one
   of the student's enrollments unless calpads.afterschool.eligibility exempts it: AR, and expanded
   learning of a registered student, e.g. summer; at most 600 minutes a day). An
   invalid row is never written and is listed; if invalid rows exceed the ceiling (default 5%), the
   whole write is rejected and nothing is written.
3. ``apply``: dry_run (default) writes nothing and reports what would be written; write runs the
   inserts/updates in one SIS transaction (SQL) or call by call (PowerSchool API), after recording
   each change (before/after, who, which run) in the audit table. A re-run plans nothing new.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from calpads.afterschool import PARTICIPATION_TABLE, PROGRAMS
from calpads.afterschool.eligibility import covered_by_enrollment, needs_enrollment
from calpads.afterschool.sis_data import SisSnapshot
from calpads.afterschool.store import AfterschoolStore, now

log = logging.getLogger(__name__)

MAX_MINUTES = 600
MAX_MINUTES_PER_DAY = 600
WRITE_MODES = ("dry_run", "write")
KEY = ["studentid", "participation_date", "program"]
FIELDS = ["studentid", "schoolid", "participation_date", "minutes", "program", "source_row_hash"]

# rule id -> (what is wrong, what to do), in the integration team's words
RULES: dict[str, tuple[str, str]] = {
    "WB-REQUIRED": ("A participation row lacks a required field (student, school, date, minutes, program, hash).",
                    "Report this to the integration team: the staged session is incomplete."),
    "WB-STUDENT": ("The student is not in the SIS STUDENTS table.",
                   "Check the student's SIS record; the write is retried the next night."),
    "WB-SCHOOL": ("The school is not in the SIS SCHOOLS table.",
                  "Check the site's school code in the afterschool platform and the SIS School Info page."),
    "WB-DATE": ("The participation date is not a date of the academic year, or is after today.",
                "Correct the session date in the afterschool platform."),
    "WB-MINUTES": (f"Minutes must be a whole number from 1 to {MAX_MINUTES}.",
                   "Correct the session's minutes in the afterschool platform."),
    "WB-PROGRAM": ("The program must be ELO-P, ASES, 21CCLC or AR.", "Correct the program in the platform."),
    "WB-ENROLLED": ("The student has no SIS enrollment covering the participation date and no expanded-learning "
                    "registration (a registered student's summer or intersession days, and AR, need no enrollment).",
                    "Register the student for the program in the afterschool platform, or ask the school office "
                    "whether the enrollment dates are right, or correct the session date."),
    "WB-DAY-MINUTES": (f"The student's afterschool minutes on one date add up to more than {MAX_MINUTES_PER_DAY}.",
                       "Check the student's check-ins for that date in the afterschool platform."),
}


class WriteRejected(RuntimeError):
    """Validation failed for too many rows: nothing was written (no student data in the text)."""


class WriteBackError(RuntimeError):
    """The SIS refused or lacks the participation table (said in the integration team's words)."""


@dataclass
class Plan:
    inserts: pd.DataFrame            # FIELDS + local_student_id
    updates: pd.DataFrame            # FIELDS + id + before_* + local_student_id
    unchanged: int
    invalid: pd.DataFrame            # FIELDS + local_student_id + rule_id
    table_exists: bool
    counts: dict[str, int] = field(default_factory=dict)


def desired_rows(sessions: pd.DataFrame) -> pd.DataFrame:
    """Staged sessions -> the SIS participation rows (one per student, date, program)."""
    if sessions.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in [*FIELDS, "local_student_id"]})
    d = pd.DataFrame({
        "studentid": pd.to_numeric(sessions["student_id"]).astype("int64"),
        "schoolid": pd.to_numeric(sessions["schoolid"]).astype("int64"),
        "participation_date": sessions["session_date"].astype(str),
        "minutes": pd.to_numeric(sessions["minutes"], errors="coerce"),
        "program": sessions["program"].astype(str),
        "source_row_hash": sessions["row_hash"].astype(str),
        "local_student_id": sessions["student_number"].astype(str),
    })
    return d.drop_duplicates(KEY, keep="first").reset_index(drop=True)


def validate(rows: pd.DataFrame, sis: SisSnapshot, year_start: date, last_day: date,
             registered: set[int] | frozenset[int] = frozenset()) -> pd.Series:
    """The first failing rule id per row (None = valid). registered: SIS ids of students with an expanded-learning
    registration for the year."""
    n = len(rows)
    rule = pd.Series([None] * n, index=rows.index, dtype="object")

    def fail(mask: Any, rule_id: str) -> None:
        m = pd.Series(np.asarray(mask, dtype=bool), index=rows.index) & rule.isna()
        rule[m] = rule_id

    if n == 0:
        return rule
    fail(rows[FIELDS].isna().any(axis=1), "WB-REQUIRED")
    fail(~rows["studentid"].isin(set(sis.students["student_id"].dropna().astype("int64"))), "WB-STUDENT")
    fail(~rows["schoolid"].isin(set(sis.schools["school_number"].dropna().astype("int64"))), "WB-SCHOOL")
    day = pd.to_datetime(rows["participation_date"], format="%Y-%m-%d", errors="coerce")
    fail(day.isna() | (day < pd.Timestamp(year_start)) | (day > pd.Timestamp(last_day)), "WB-DATE")
    minutes = pd.to_numeric(rows["minutes"], errors="coerce")
    fail(minutes.isna() | (minutes % 1 != 0) | (minutes < 1) | (minutes > MAX_MINUTES), "WB-MINUTES")
    fail(~rows["program"].isin(PROGRAMS), "WB-PROGRAM")
    enrolled = covered_by_enrollment(rows["studentid"], day, sis.enrollments)
    fail(~enrolled & needs_enrollment(rows["program"], rows["studentid"], registered), "WB-ENROLLED")
    per_day = minutes.groupby([rows["studentid"], rows["participation_date"]]).transform("sum")
    fail(per_day > MAX_MINUTES_PER_DAY, "WB-DAY-MINUTES")
    return rule


def plan(sessions: pd.DataFrame, sis: SisSnapshot, *, year_start: date, last_day: date,
         registered: set[int] | frozenset[int] = frozenset()) -> Plan:
    want = desired_rows(sessions)
    rule = validate(want, sis, year_start, last_day, registered)
    invalid = want[rule.notna()].assign(rule_id=rule[rule.notna()])
    valid = want[rule.isna()]
    have = sis.participation.dropna(subset=["studentid", "participation_date", "program"]).copy()
    if len(have):
        have["studentid"] = have["studentid"].astype("int64")
    have = have.rename(columns={c: f"before_{c}" for c in ("schoolid", "minutes", "source_row_hash")})
    m = valid.merge(have[["id", *KEY, "before_schoolid", "before_minutes", "before_source_row_hash"]],
                    on=KEY, how="left")
    new = m["id"].isna()
    changed = ~new & ((m["schoolid"] != m["before_schoolid"]) | (m["minutes"] != m["before_minutes"])
                      | (m["source_row_hash"] != m["before_source_row_hash"]))
    inserts = m[new][[*FIELDS, "local_student_id"]].reset_index(drop=True)
    updates = m[changed].reset_index(drop=True)
    p = Plan(inserts, updates, int((~new & ~changed).sum()), invalid.reset_index(drop=True), sis.participation_exists)
    p.counts = {"inserts": len(inserts), "updates": len(updates), "unchanged": p.unchanged, "invalid": len(invalid)}
    return p


def _record(row: Any) -> dict[str, Any]:
    return {"studentid": int(row.studentid), "schoolid": int(row.schoolid),
            "participation_date": str(row.participation_date), "minutes": int(row.minutes),
            "program": str(row.program), "source_row_hash": str(row.source_row_hash)}


def _audit_rows(p: Plan, *, run_pk: int, lea: str, run_id: str, actor: str, target: str) -> list[dict[str, Any]]:
    at = now()
    out = []
    for action, frame in (("insert", p.inserts), ("update", p.updates)):
        for r in frame.itertuples(index=False):
            before = None
            if action == "update":
                before = json.dumps({"id": int(r.id), "schoolid": _num(r.before_schoolid),
                                     "minutes": _num(r.before_minutes), "source_row_hash": r.before_source_row_hash})
            out.append({"writeback_run_pk": run_pk, "reporting_lea": lea, "run_id": run_id, "actor": actor,
                        "written_at": at, "target": target, "action": action, "studentid": int(r.studentid),
                        "local_student_id": r.local_student_id, "participation_date": str(r.participation_date),
                        "program": str(r.program), "before": before, "after": json.dumps(_record(r)),
                        "status": "pending"})
    return out


def _num(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


# --------------------------------------------------------------------------- targets
class SqlTarget:
    def __init__(self, engine: sa.Engine, table: str = PARTICIPATION_TABLE):
        self.engine = engine
        self.table = sa.table(table.lower(), *(sa.column(c) for c in ("id", *FIELDS)))
        self.name = f"sql:{table.upper()}"

    @property
    def actor(self) -> str:
        return self.engine.url.username or f"{self.engine.url.get_backend_name()} (no login)"

    def write(self, p: Plan) -> int:
        t = self.table
        try:
            with self.engine.begin() as conn:
                if len(p.inserts):
                    conn.execute(t.insert(), [_record(r) for r in p.inserts.itertuples(index=False)])
                if len(p.updates):
                    stmt = t.update().where(t.c.id == sa.bindparam("b_id")).values(
                        schoolid=sa.bindparam("b_schoolid"), minutes=sa.bindparam("b_minutes"),
                        source_row_hash=sa.bindparam("b_hash"))
                    conn.execute(stmt, [{"b_id": int(r.id), "b_schoolid": int(r.schoolid), "b_minutes": int(r.minutes),
                                         "b_hash": str(r.source_row_hash)} for r in p.updates.itertuples(index=False)])
        except sa.exc.DBAPIError as exc:
            kind = type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__
            raise WriteBackError(
                f"The SIS refused the participation write ({kind}); nothing was written (one transaction). "
                f"Ask district IT to grant the sis_db login INSERT and UPDATE on {t.name.upper()}.") from None
        return len(p.inserts) + len(p.updates)


class PowerSchoolTarget:
    """POST /ws/schema/table/{table} (insert) and PUT /ws/schema/table/{table}/{id} (update),
    body {"tables": {table: {column: value}}}; the answer's result[].status must be SUCCESS."""

    def __init__(self, client: Any, table: str = PARTICIPATION_TABLE):
        self.client = client
        self.table = table.lower()
        self.name = f"powerschool_api:{table.upper()}"

    @property
    def actor(self) -> str:
        return f"PowerSchool plugin {self.client.settings.client_id}"

    def _send(self, method: str, path: str, record: dict[str, Any]) -> None:
        from calpads.sources.api_common import AccessDenied

        body = {"tables": {self.table: {k: str(v) for k, v in record.items()}}}
        try:
            resp = self.client.http.send(method, path, json_body=body)
        except AccessDenied:
            raise WriteBackError(f"PowerSchool refused {method} {path}: ask district IT to give the plugin write "
                                 f"access to {self.table.upper()} (plugin.xml access request).") from None
        results = (resp.json() or {}).get("result") or [{}]
        if any(str(r.get("status", "")).upper() != "SUCCESS" for r in results):
            raise WriteBackError(f"PowerSchool did not accept {method} {path}: ask the SIS vendor why the plugin's "
                                 f"write to {self.table.upper()} fails.")

    def write(self, p: Plan) -> int:
        n = 0
        for r in p.inserts.itertuples(index=False):
            self._send("POST", f"/ws/schema/table/{self.table}", _record(r))
            n += 1
        for r in p.updates.itertuples(index=False):
            rec = _record(r)
            self._send("PUT", f"/ws/schema/table/{self.table}/{int(r.id)}", rec)
            n += 1
        return n


def apply(p: Plan, target: SqlTarget | PowerSchoolTarget, store: AfterschoolStore, *, mode: str, lea: str,
          academic_year: str, dag_id: str, run_id: str, ceiling: float = 0.05) -> dict[str, Any]:
    if mode not in WRITE_MODES:
        raise ValueError(f"write_mode must be one of {WRITE_MODES}")
    total = len(p.inserts) + len(p.updates) + p.unchanged + len(p.invalid)
    share = len(p.invalid) / total if total else 0.0
    out: dict[str, Any] = {"write_mode": mode, "target": target.name, **p.counts, "written": 0,
                           "invalid_share": round(share, 4), "rules": p.invalid["rule_id"].value_counts().to_dict()
                           if len(p.invalid) else {}}
    run_pk = store.start_writeback(reporting_lea=lea, academic_year=academic_year, dag_id=dag_id, run_id=run_id,
                                   write_mode=mode, target=target.name, actor=target.actor, status="planned",
                                   planned_inserts=len(p.inserts), planned_updates=len(p.updates),
                                   unchanged=p.unchanged, invalid=len(p.invalid))
    if share > ceiling:
        store.finish_writeback(run_pk, status="rejected")
        out["status"] = "rejected"
        raise WriteRejected(f"{len(p.invalid)} of {total} participation rows failed validation, more than the "
                            f"{ceiling:.0%} ceiling: nothing was written to the SIS. See writeback_invalid.csv in the "
                            f"run's report folder for the rules and the Local Student IDs.")
    if mode == "dry_run":
        store.finish_writeback(run_pk, status="planned")
        out["status"] = "dry_run"
        return out
    if not p.table_exists:
        store.finish_writeback(run_pk, status="failed")
        raise WriteBackError(f"The SIS has no {PARTICIPATION_TABLE} table: ask district IT to run the migration "
                             "(python -m calpads.afterschool.sis_migrate, sql/sis/) before switching write_mode to "
                             "write. Nothing was written.")
    if not (len(p.inserts) or len(p.updates)):
        store.finish_writeback(run_pk, status="written", written=0)
        out["status"] = "nothing_to_write"
        return out
    store.add_audit(_audit_rows(p, run_pk=run_pk, lea=lea, run_id=run_id, actor=target.actor, target=target.name))
    try:
        written = target.write(p)
    except Exception:
        store.set_audit_status(run_pk, "failed")
        store.finish_writeback(run_pk, status="failed")
        raise
    store.set_audit_status(run_pk, "done")
    store.finish_writeback(run_pk, status="written", written=written)
    out.update(status="written", written=written)
    log.info("Wrote %d participation row(s) to %s (%d inserts, %d updates)", written, target.name,
             len(p.inserts), len(p.updates))
    return out
