"""The SQL source adapter: the SIS database's contract tables -> staged tables.

SQLAlchemy Core, bound parameters, lower-case names (SQLite and MS SQL match them
case-insensitively, PostgreSQL folds the contract's unquoted upper-case DDL to lower case).
A table is read straight into Arrow record batches where the backend allows it (PostgreSQL's COPY, the
ADBC SQLite driver: calpads.staging.sql_arrow), else rows are streamed from a DBAPI cursor of the
SQLAlchemy connection (a named, server-side cursor on PostgreSQL) in batches into Arrow: either way
no Row object per row, no frame of Python objects, never the whole table in memory, and the same
staged table. On SQLite the program rows are read through a second ADBC connection in a thread of
their own while the other tables are read (``SqlAdapter._read_ahead``).

What is pushed down is a superset of what any record type selects, never a selection rule:
enrollments, programs and services outside the academic year's date window (widened to the
run's dates) stay in the database; a date that is not a date is always read (the builders list
it). Every date column is read as text ('YYYY-MM-DD' on each backend). The Student Criteria,
the report range, the program set and the exclusions are calpads.extracts.selection's.

The two aggregates stay in the database: ``attendance_category_days`` (STAS's day counts,
calpads.sources.sql_attendance) and ``absent_days`` (LEAP's report), so no daily attendance row
leaves it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from calpads.run_scope import RunScope, academic_year_bounds
from calpads.sources import sql_sis
from calpads.sources.sql_enrollment import CURRENT, EARLIER, codes_in_sis
from calpads.staging import contract as c
from calpads.staging.sql_arrow import ArrowReader, NotFast, SqliteAdbcReader, arrow_reader, raise_driver_error
from calpads.staging.store import StagedTables

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000
_CLAUSES = {c.PREFS: sql_sis.PREFS, c.SCHOOLS: sql_sis.SCHOOLS, c.CALENDAR_DAY: sql_sis.CALENDAR_DAY,
            c.STUDENTS: sql_sis.STUDENTS, c.REENROLLMENTS: sql_sis.REENROLLMENTS, c.STU_X: sql_sis.STU_X,
            c.PROGRAMS: sql_sis.PROGRAMS, c.SERVICES: sql_sis.SERVICES}


def date_window(scope: RunScope) -> tuple[str, str]:
    """The academic year (July 1 - June 30), widened to the run's dates: every record type's report range."""
    first, last = academic_year_bounds(scope.academic_year)
    return min(first, scope.start_date).isoformat(), max(last, scope.end_date).isoformat()


def _window(table: str, t: sa.TableClause, scope: RunScope) -> list[sa.ColumnElement[bool]]:
    """The pushdown of a table: rows that may overlap the date window (a date that is not a date included)."""
    start, end = date_window(scope)
    nad = sql_sis.not_a_date
    if table in (c.REENROLLMENTS,):
        return [sa.or_(t.c.entrydate <= end, nad(t.c.entrydate)),
                sa.or_(t.c.exitdate.is_(None), t.c.exitdate > start, nad(t.c.exitdate))]
    if table == c.PROGRAMS:
        ps, pe = t.c.programstartdate, t.c.programenddate
        return [sa.or_(ps.is_(None), ps <= end, nad(ps)),
                sa.or_(pe.is_(None), sa.cast(pe, sa.String()) == "", pe > start, nad(pe))]
    if table == c.SERVICES:
        d = t.c.servicedate
        return [sa.or_(sa.and_(d >= start, d <= end), nad(d))]
    return []


def table_select(table: str, scope: RunScope, have: Collection[str] = ()) -> sa.Select:
    """The SELECT staging one contract table; ``have``: the table's optional columns the SIS has (others NULL)."""
    t = _CLAUSES[table]
    optional = c.OPTIONAL_COLUMNS.get(table, ())
    cols: list[sa.ColumnElement] = []
    for col in c.TABLE_COLUMNS[table]:
        if col in optional and col not in have:
            cols.append(sa.cast(sa.null(), sa.String()).label(col))
        elif col in c.DATE_COLUMNS:
            cols.append(sa.cast(t.c[col], sa.String()).label(col))
        else:
            cols.append(t.c[col])
    return sa.select(*cols).where(*_window(table, t, scope))


def _array(values: np.ndarray, column: str) -> pa.Array:
    try:
        return pa.array(values, c.column_type(column))
    except (pa.ArrowInvalid, pa.ArrowTypeError):   # a SQLite SIS may hold text in an INTEGER column, or vice versa
        return c.typed_array(column, values)


def _rows(conn: sa.Connection, query: sa.Select, batch_rows: int) -> Iterator[list[tuple[object, ...]]]:
    """The query's rows in lists of at most batch_rows plain tuples, from a DBAPI cursor of the connection (a
    named, server-side cursor on PostgreSQL): no SQLAlchemy Row object per row, no whole result in memory."""
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    if conn.dialect.positional:
        args: object = tuple(params[k] for k in compiled.positiontup or ())
    else:
        args = params
    dbapi = conn.connection.dbapi_connection
    server_side = conn.dialect.name == "postgresql"
    base_error = conn.dialect.loaded_dbapi.Error
    cursor = dbapi.cursor(name="calpads_staging") if server_side else dbapi.cursor()
    try:
        if server_side:
            cursor.itersize = batch_rows
        cursor.execute(str(compiled), args)
        while rows := cursor.fetchmany(batch_rows):
            yield rows
    except base_error as exc:   # as SQLAlchemy raises a driver's error (a SIS outage is sa.exc.DBAPIError)
        raise_driver_error(conn, str(compiled), exc, cursor)
    finally:
        try:
            cursor.close()
        except base_error:   # the connection is gone already
            pass


def _batches(conn: sa.Connection, query: sa.Select, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    names = schema.names
    for rows in _rows(conn, query, batch_rows):
        # The rows as one 2-D object array (a C loop), read by column: about twice as fast as transposing the
        # tuples with zip(*rows) into Python lists, and pyarrow reads the same values from either.
        grid = np.empty((len(rows), len(names)), dtype=object)
        grid[:] = rows
        yield pa.RecordBatch.from_arrays([_array(grid[:, i], n) for i, n in enumerate(names)], schema=schema)


class SqlAdapter:
    """Stages contract tables and aggregates from a SIS database (see the module docstring)."""

    def __init__(self, engine: sa.Engine, *, batch_rows: int = BATCH_ROWS, fast: bool = True):
        self.engine = engine
        self.batch_rows = batch_rows
        self.fast = fast   # False: every table row by row (the fallback's own tests, the old-vs-new equality check)

    def stage(self, tables: Collection[str], scope: RunScope, staged: StagedTables) -> None:
        contract = [t for t in tables if t in c.TABLE_COLUMNS]
        with self.engine.connect() as conn:
            codes = codes_in_sis(conn) if {c.STUDENTS, c.REENROLLMENTS} & set(contract) else {}
            have = {c.STUDENTS: codes.get(CURRENT, frozenset()), c.REENROLLMENTS: codes.get(EARLIER, frozenset())}
            fast = arrow_reader(conn) if self.fast else None
            reads = {table: (table_select(table, scope, have.get(table, ())),
                             [col for col in c.OPTIONAL_COLUMNS.get(table, ()) if col not in have.get(table, ())])
                     for table in contract}
            ahead: Future[int] | None = None
            try:
                if isinstance(fast, SqliteAdbcReader) and c.PROGRAMS in contract and len(contract) > 1:
                    ahead = self._read_ahead(conn, staged, c.PROGRAMS, *reads[c.PROGRAMS])
                for table in contract:
                    if table == c.PROGRAMS and ahead is not None:
                        continue
                    n = self._stage_table(conn, fast, staged, table, *reads[table])
                    log.info("Staged %s: %d rows", table, n)
                if ahead is not None:
                    n = self._read_ahead_rows(conn, staged, ahead, c.PROGRAMS, *reads[c.PROGRAMS])
                    log.info("Staged %s: %d rows", c.PROGRAMS, n)
            finally:
                if ahead is not None:
                    wait([ahead])   # a failed read of another table waits for this one's thread
                if fast is not None:
                    fast.close()
        if c.ATTENDANCE_CATEGORY_DAYS in tables:
            staged.write_frame(c.ATTENDANCE_CATEGORY_DAYS, self.category_days(staged, scope))
        if c.ABSENT_DAYS in tables:
            from calpads.extracts.selection import absent_days_range
            from calpads.sources.sql_attendance import absent_days

            staged.write_frame(c.ABSENT_DAYS, absent_days(self.engine, *absent_days_range(scope)))

    def _stage_table(self, conn: sa.Connection, fast: ArrowReader | None, staged: StagedTables, table: str,
                     query: sa.Select, missing: list[str]) -> int:
        """One table: through the backend's fast read (staging.sql_arrow) when it has one and it can read the table
        exactly, else (and again after a NotFast, the half-written table discarded) row by row."""
        schema = c.schema(table)
        if fast is not None:
            try:
                return staged.write(table, fast.batches(query, schema, self.batch_rows), schema,
                                    missing_columns=missing)
            except NotFast as exc:
                log.info("Staging %s row by row: %s", table, exc)
        return staged.write(table, _batches(conn, query, schema, self.batch_rows), schema, missing_columns=missing)

    def _read_ahead(self, conn: sa.Connection, staged: StagedTables, table: str, query: sa.Select,
                    missing: list[str]) -> Future[int] | None:
        """The table (the largest a record type stages: 2.9M program rows at 500k students) staged in a thread of
        its own, through a second ADBC connection to the SQLite file, while this thread stages the others: both
        reads and their Parquet writes run outside the GIL. None when the fast read refuses the table (it is then
        read in turn, as every table is)."""
        reader = SqliteAdbcReader.open(conn)
        if reader is None:
            return None
        schema = c.schema(table)
        try:
            reader.check(query, schema)
        except NotFast:
            reader.close()
            return None

        def read() -> int:
            try:
                return staged.write(table, reader.batches(query, schema, self.batch_rows, affinity_checked=True),
                                    schema, missing_columns=missing)
            finally:
                reader.close()

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staging-ahead")
        try:
            return pool.submit(read)
        finally:
            pool.shutdown(wait=False)

    def _read_ahead_rows(self, conn: sa.Connection, staged: StagedTables, ahead: Future[int], table: str,
                         query: sa.Select, missing: list[str]) -> int:
        """The read-ahead table's rows; read row by row on this connection when the fast read turned out unable
        to stage it exactly (as ``_stage_table`` does)."""
        try:
            return ahead.result()
        except NotFast as exc:
            log.info("Staging %s row by row: %s", table, exc)
        schema = c.schema(table)
        return staged.write(table, _batches(conn, query, schema, self.batch_rows), schema, missing_columns=missing)

    def category_days(self, staged: StagedTables, scope: RunScope) -> pd.DataFrame:
        """STAS's day counts per student and school, over selection.category_days_scope (every reportable
        school), counted by the SIS database."""
        from calpads.extracts import stas
        from calpads.extracts.selection import category_days_scope, reportable_schools
        from calpads.sources.sql_attendance import category_counts

        cfg = stas.settings()
        numbers = [int(n) for n in reportable_schools(staged.frame(c.SCHOOLS))["school_number"]]
        return category_counts(self.engine, category_days_scope(scope), numbers, list(cfg["categories"]),
                               cfg["categories"], cfg["uncategorised_absent"])
