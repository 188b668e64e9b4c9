"""The afterschool tables of ``calpads_store``: imports, the staged sessions, write-back runs and audit.

Created on first use (``create_all``, additive only); every row carries its Reporting LEA.
- ``afterschool_imports``: one row per export file imported (unique per LEA + sha256): a file
  seen before is not staged again (idempotent per checksum).
- ``afterschool_sessions``: the platform's gated sessions of the latest import per LEA and
  academic year. The platform's export is the year to date, so an import replaces the year's
  rows (in one transaction). No SSIDs or names are kept.
- ``afterschool_registrations``: the gated expanded-learning registrations of that import.
- ``afterschool_held_rows``: the export's rows the gate held back (attendance and registrations), as
  the platform sent them minus the SSID, with the rules they broke: the platform's export is the
  staged rows plus these, so the spot-check and LEAP can see what did not reach the SIS.
- ``afterschool_writeback_runs`` / ``afterschool_writeback_audit``: every write into the SIS:
  who (connection login or plugin client id), when, which run, before and after.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
metadata = sa.MetaData()

imports = sa.Table(
    "afterschool_imports", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("reporting_lea", sa.String(7), nullable=False),
    sa.Column("academic_year", sa.String(9), nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("source", sa.String(300), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False),
    sa.Column("rows_accepted", sa.Integer, nullable=False),
    sa.Column("rows_held", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),     # JSON: per-rule counts (no student data)
    sa.UniqueConstraint("reporting_lea", "checksum", name="uq_afterschool_imports_checksum"),
)

sessions = sa.Table(
    "afterschool_sessions", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("reporting_lea", sa.String(7), nullable=False),
    sa.Column("academic_year", sa.String(9), nullable=False),
    sa.Column("import_id", BigId, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("student_number", sa.String(15), nullable=False),
    sa.Column("student_id", sa.BigInteger, nullable=False),        # SIS STUDENTS.ID
    sa.Column("school_code", sa.String(7), nullable=False),
    sa.Column("schoolid", sa.Integer, nullable=False),             # SIS SCHOOLS.SCHOOL_NUMBER
    sa.Column("session_date", sa.String(10), nullable=False),      # YYYY-MM-DD
    sa.Column("minutes", sa.Integer, nullable=False),
    sa.Column("program", sa.String(10), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Index("ix_afterschool_sessions_year", "reporting_lea", "academic_year", "student_id"),
)

registrations = sa.Table(
    "afterschool_registrations", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("reporting_lea", sa.String(7), nullable=False),
    sa.Column("academic_year", sa.String(9), nullable=False),
    sa.Column("import_id", BigId, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("student_number", sa.String(15), nullable=False),
    sa.Column("student_id", sa.BigInteger, nullable=False),        # SIS STUDENTS.ID
    sa.Column("program", sa.String(10), nullable=False),
    sa.Column("registration_date", sa.String(10), nullable=False),  # YYYY-MM-DD
    sa.Index("ix_afterschool_registrations_year", "reporting_lea", "academic_year"),
)

held_table = sa.Table(
    "afterschool_held_rows", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("reporting_lea", sa.String(7), nullable=False),
    sa.Column("academic_year", sa.String(9), nullable=False),
    sa.Column("import_id", BigId, nullable=False),
    sa.Column("file", sa.String(20), nullable=False),              # attendance | registrations
    sa.Column("line", sa.Integer, nullable=False),
    # the platform's values as sent (free text: a held-back row may carry anything); never the SSID
    sa.Column("student_number", sa.Text),
    sa.Column("school_code", sa.Text),
    sa.Column("day", sa.Text),                                     # session_date or registration_date
    sa.Column("minutes", sa.Text),
    sa.Column("program", sa.Text),
    sa.Column("rule_ids", sa.Text, nullable=False),                # comma-separated
    sa.Index("ix_afterschool_held_rows_year", "reporting_lea", "academic_year"),
)

writeback_runs = sa.Table(
    "afterschool_writeback_runs", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("reporting_lea", sa.String(7), nullable=False),
    sa.Column("academic_year", sa.String(9), nullable=False),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("write_mode", sa.String(10), nullable=False),     # dry_run | write
    sa.Column("target", sa.String(300), nullable=False),        # e.g. sql:U_AFTERSCHOOL_PARTICIPATION
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(20), nullable=False),         # planned | rejected | written | failed
    sa.Column("planned_inserts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("planned_updates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("invalid", sa.Integer, nullable=False, server_default="0"),
    sa.Column("written", sa.Integer, nullable=False, server_default="0"),
)

audit = sa.Table(
    "afterschool_writeback_audit", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("writeback_run_pk", BigId, nullable=False),
    sa.Column("reporting_lea", sa.String(7), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("action", sa.String(10), nullable=False),          # insert | update
    sa.Column("studentid", sa.BigInteger, nullable=False),
    sa.Column("local_student_id", sa.String(15)),
    sa.Column("participation_date", sa.String(10), nullable=False),
    sa.Column("program", sa.String(10), nullable=False),
    sa.Column("before", sa.Text),                                # JSON of the SIS row before (None on insert)
    sa.Column("after", sa.Text, nullable=False),                 # JSON of the row written
    sa.Column("status", sa.String(10), nullable=False),          # pending | done | failed
    sa.Index("ix_afterschool_audit_run", "writeback_run_pk"),
)


class AfterschoolNotImported(RuntimeError):
    """No afterschool import for the LEA and year: afterschool_sync has not run (said in the team's words)."""


@dataclass
class Staged:
    """The afterschool platform's latest export for one LEA and year, as afterschool_sync gated it: the one
    reader of afterschool data for LEAP, STAS 13.24, the reconciliation, the write-back and the health checks."""

    lea: str
    academic_year: str
    import_row: dict[str, Any]
    sessions: pd.DataFrame         # student_number, student_id, school_code, schoolid, session_date, minutes, program,
                                   # row_hash
    registrations: pd.DataFrame    # student_number, student_id, program, registration_date
    held: pd.DataFrame             # file, line, student_number, school_code, day, minutes, program, rule_ids

    def registered_ids(self) -> set[int]:
        """SIS student ids with an expanded-learning registration for the year."""
        return {int(i) for i in self.registrations["student_id"].dropna()}

    def held_report(self, file: str, what: str, effect: str, ar: bool | None = None) -> pd.DataFrame:
        """The held-back rows of one file as a builder's not-extracted rows: one per student number, "<n> <what>
        held back by the afterschool import (<rules>): <effect>" (no dates or SSIDs). ar: True = only AR
        sessions, False = all but AR sessions (a broken program may be the reason), None = every row."""
        rows = self.held[self.held["file"] == file]
        if ar is not None:
            rows = rows[(rows["program"].fillna("") == "AR") == ar]
        cols = ["local_record_id", "local_student_id", "school_of_attendance", "reason"]
        if rows.empty:
            return pd.DataFrame(columns=cols)
        rows = rows.assign(student_number=rows["student_number"].fillna("(blank)"))
        out = []
        for number, grp in rows.groupby("student_number", sort=True):
            rules = ", ".join(sorted({r for ids in grp["rule_ids"] for r in str(ids).split(",")}))
            out.append((f"afterschool.{number}", number, None,
                        f"{len(grp)} {what} held back by the afterschool import ({rules}): {effect}"))
        return pd.DataFrame(out, columns=cols)


HELD_VALUE_COLUMNS = ("student_number", "school_code", "day", "minutes", "program")


def now() -> datetime:
    return datetime.now(UTC)


def row_hash(student_number: Any, school_code: Any, session_date: Any, minutes: Any, program: Any) -> str:
    return hashlib.sha256("\x1f".join(str(v) for v in (student_number, school_code, session_date, minutes, program))
                          .encode()).hexdigest()


class AfterschoolStore:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        metadata.create_all(engine, checkfirst=True)

    # ------------------------------------------------------------------ imports
    def find_import(self, lea: str, checksum: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(imports).where(imports.c.reporting_lea == lea,
                                                        imports.c.checksum == checksum)).mappings().first()
        return dict(row) if row else None

    def stage(self, *, lea: str, academic_year: str, checksum: str, source: str, run_id: str, rows_total: int,
              accepted: pd.DataFrame, held: int, summary: dict[str, Any],
              accepted_registrations: pd.DataFrame | None = None,
              held_rows: pd.DataFrame | None = None) -> tuple[int, bool]:
        """Record the import and replace the year's sessions, registrations and held-back rows.
        Returns (import id, staged now?)."""
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(imports.c.id).where(imports.c.reporting_lea == lea,
                                                               imports.c.checksum == checksum)).scalar()
            if found is not None:
                return int(found), False
            import_id = conn.execute(imports.insert().values(
                reporting_lea=lea, academic_year=academic_year, checksum=checksum, source=source[:300],
                run_id=run_id, received_at=now(), rows_total=rows_total, rows_accepted=len(accepted),
                rows_held=held, summary=json.dumps(summary, sort_keys=True, default=str),
            )).inserted_primary_key[0]
            for table in (sessions, registrations, held_table):
                conn.execute(table.delete().where(table.c.reporting_lea == lea,
                                                  table.c.academic_year == academic_year))
            records = [
                {"reporting_lea": lea, "academic_year": academic_year, "import_id": import_id, "line": int(r.line),
                 "student_number": r.student_number, "student_id": int(r.student_id), "school_code": r.school_code,
                 "schoolid": int(r.schoolid), "session_date": r.session_date, "minutes": int(r.minutes),
                 "program": r.program,
                 "row_hash": row_hash(r.student_number, r.school_code, r.session_date, r.minutes, r.program)}
                for r in accepted.itertuples(index=False)
            ]
            for i in range(0, len(records), 20_000):
                conn.execute(sessions.insert(), records[i:i + 20_000])
            key = {"reporting_lea": lea, "academic_year": academic_year, "import_id": import_id}
            if accepted_registrations is not None and len(accepted_registrations):
                conn.execute(registrations.insert(), [
                    {**key, "line": int(r.line), "student_number": r.student_number, "student_id": int(r.student_id),
                     "program": r.program, "registration_date": r.registration_date}
                    for r in accepted_registrations.itertuples(index=False)])
            if held_rows is not None and len(held_rows):
                rows = held_rows.astype("object").where(held_rows.notna(), None)
                conn.execute(held_table.insert(), [
                    {**key, **{c: (None if r[c] is None else str(r[c])[:200]) for c in HELD_VALUE_COLUMNS},
                     "file": r["file"], "line": int(r["line"]), "rule_ids": r["rule_ids"]}
                    for r in rows.to_dict("records")])
        return int(import_id), True

    def current_sessions(self, lea: str, academic_year: str) -> pd.DataFrame:
        """The staged (gated) platform sessions of the year: what LEAP/STAS builders read too."""
        q = sa.select(sessions.c.student_number, sessions.c.student_id, sessions.c.school_code, sessions.c.schoolid,
                      sessions.c.session_date, sessions.c.minutes, sessions.c.program, sessions.c.row_hash).where(
            sessions.c.reporting_lea == lea, sessions.c.academic_year == academic_year)
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def year_import(self, lea: str, academic_year: str) -> dict[str, Any] | None:
        """The latest import of the LEA's export for the year (None: afterschool_sync has not imported it)."""
        q = sa.select(imports).where(imports.c.reporting_lea == lea, imports.c.academic_year == academic_year) \
            .order_by(imports.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def staged(self, lea: str, academic_year: str, *, needed_by: str = "this run") -> Staged:
        """The year's gated export (sessions, registrations, held-back rows). AfterschoolNotImported when
        afterschool_sync has not imported anything for the LEA and year: never an empty stand-in."""
        found = self.year_import(lea, academic_year)
        if found is None:
            raise AfterschoolNotImported(
                f"{needed_by} needs the afterschool platform's attendance and registrations for {academic_year}, "
                f"which the afterschool_sync DAG imports, checks and stages; it has not imported any for "
                f"{academic_year} (Reporting LEA {lea}). Run afterschool_sync for {academic_year} (it runs nightly), "
                "check that it succeeded, then run this again.")
        key = [registrations.c.reporting_lea == lea, registrations.c.academic_year == academic_year]
        with self.engine.connect() as conn:
            regs = pd.read_sql(sa.select(registrations.c.student_number, registrations.c.student_id,
                                         registrations.c.program, registrations.c.registration_date).where(*key), conn)
            held = pd.read_sql(sa.select(held_table.c.file, held_table.c.line,
                                         *(held_table.c[c] for c in HELD_VALUE_COLUMNS),
                                         held_table.c.rule_ids).where(
                held_table.c.reporting_lea == lea, held_table.c.academic_year == academic_year), conn)
        return Staged(lea, academic_year, found, self.current_sessions(lea, academic_year), regs, held)

    def written_days(self, lea: str, first: str, last: str) -> pd.DataFrame:
        """(studentid, participation_date) the pipeline wrote into the SIS (audited, done) between two dates."""
        q = sa.select(audit.c.studentid, audit.c.participation_date).distinct().where(
            audit.c.reporting_lea == lea, audit.c.status == "done", audit.c.participation_date >= first,
            audit.c.participation_date <= last)
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def last_import(self, lea: str | None = None) -> dict[str, Any] | None:
        q = sa.select(imports).order_by(imports.c.id.desc()).limit(1)
        if lea:
            q = q.where(imports.c.reporting_lea == lea)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    # ------------------------------------------------------------------ write-back
    def start_writeback(self, **values: Any) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(writeback_runs.insert().values(started_at=now(), **values))
                       .inserted_primary_key[0])

    def finish_writeback(self, pk: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(writeback_runs.update().where(writeback_runs.c.id == pk).values(finished_at=now(), **values))

    def add_audit(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            for i in range(0, len(rows), 20_000):
                conn.execute(audit.insert(), rows[i:i + 20_000])

    def set_audit_status(self, run_pk: int, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(audit.update().where(audit.c.writeback_run_pk == run_pk, audit.c.status == "pending")
                         .values(status=status))

    def audit_rows(self, run_id: str | None = None, lea: str | None = None) -> pd.DataFrame:
        """The write-back audit, oldest first: of one run id and one LEA when given (two LEAs' DAGs scheduled at
        the same time have the same run id)."""
        q = sa.select(audit).order_by(audit.c.id)
        if run_id:
            q = q.where(audit.c.run_id == run_id)
        if lea:
            q = q.where(audit.c.reporting_lea == lea)
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def writeback_runs(self, lea: str | None = None) -> pd.DataFrame:
        """The write-back runs, oldest first (of one LEA when given)."""
        q = sa.select(writeback_runs).order_by(writeback_runs.c.id)
        if lea:
            q = q.where(writeback_runs.c.reporting_lea == lea)
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)
