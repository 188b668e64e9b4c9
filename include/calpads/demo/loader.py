"""Bulk loading of plain row tuples: executemany on SQLite, COPY on PostgreSQL.

No ORM and no per-row statements: the demo district must load 500,000
students in minutes. Table and column names come from this package's
constants, never from input, so building the SQL text with them is safe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from calpads.sources.sis_schema import SIS_TABLES, create_sis_schema

PLANTED_TABLE = "DEMO_PLANTED_VIOLATIONS"
PLANTED_DDL = (
    f"CREATE TABLE {PLANTED_TABLE} (ID INTEGER PRIMARY KEY, STUDENTID INTEGER NOT NULL, PROGRAM_ID INTEGER, "
    "SERVICECODE VARCHAR(2), KIND VARCHAR(40) NOT NULL, RULE_ID VARCHAR(40) NOT NULL)"
)
# Planted SENR exit errors: the enrollment is STUDENTID + SCHOOLID (school number) + ENTRYDATE (SENR's Local
# Record ID STUDENTID.SCHOOLID.CCYYMMDD).
PLANTED_SENR_TABLE = "DEMO_PLANTED_SENR"
PLANTED_SENR_DDL = (
    f"CREATE TABLE {PLANTED_SENR_TABLE} (ID INTEGER PRIMARY KEY, STUDENTID INTEGER NOT NULL, "
    "SCHOOLID INTEGER NOT NULL, ENTRYDATE VARCHAR(10) NOT NULL, KIND VARCHAR(40) NOT NULL, "
    "RULE_ID VARCHAR(40) NOT NULL)"
)
ALL_TABLES = (*SIS_TABLES, PLANTED_TABLE, PLANTED_SENR_TABLE)


class TablesExistError(RuntimeError):
    """The target database already holds SIS tables and --replace was not given."""


def existing_tables(engine: sa.Engine) -> list[str]:
    present = {t.upper() for t in sa.inspect(engine).get_table_names()}
    return [t for t in ALL_TABLES if t in present]


def prepare_schema(engine: sa.Engine, replace: bool) -> None:
    """Create the contract tables and the ground-truth table; drop them first when replace."""
    found = existing_tables(engine)
    if found and not replace:
        raise TablesExistError(
            f"the database already has {len(found)} SIS table(s) ({', '.join(found[:3])}...); "
            "use --replace to drop and recreate them"
        )
    with engine.begin() as conn:
        for table in found:
            conn.exec_driver_sql(f"DROP TABLE {table}")
    create_sis_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(PLANTED_DDL)
        conn.exec_driver_sql(PLANTED_SENR_DDL)


class BulkLoader:
    """One DBAPI connection; insert(table, columns, rows) appends, commit() ends a batch."""

    def __init__(self, engine: sa.Engine):
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"the demo generator loads SQLite or PostgreSQL, not {self.dialect}")
        self.raw = engine.raw_connection()
        self.cursor = self.raw.cursor()
        if self.dialect == "sqlite":
            # A throw-away demo database: no journal, no fsync while loading.
            self.cursor.execute("PRAGMA journal_mode=OFF")
            self.cursor.execute("PRAGMA synchronous=OFF")

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        cols = ", ".join(columns)
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(columns))
            self.cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)  # noqa: S608
            return
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerows(rows)  # None -> empty unquoted field = NULL in COPY csv; no empty strings are loaded
        buf.seek(0)
        self.cursor.copy_expert(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)", buf)

    def commit(self) -> None:
        self.raw.commit()

    def close(self) -> None:
        try:
            if self.dialect == "sqlite":
                self.cursor.execute("PRAGMA journal_mode=DELETE")
                self.cursor.execute("PRAGMA synchronous=FULL")
            else:
                self.cursor.execute("ANALYZE")  # fresh statistics for the pull's joins
            self.raw.commit()
        finally:
            self.cursor.close()
            self.raw.close()
