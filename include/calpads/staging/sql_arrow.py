"""The SQL source's fast read: a staging SELECT straight into Arrow record batches, without a Python object per
value, where the SIS backend allows it; calpads.staging.sql_adapter reads row by row everywhere else.

- PostgreSQL (psycopg2): ``COPY (SELECT ...) TO STDOUT WITH (FORMAT csv)`` on the adapter's own connection, parsed
  by pyarrow's streaming CSV reader in the contract's types while the COPY runs in a thread
  (https://www.postgresql.org/docs/current/sql-copy.html). In CSV format a NULL is an unquoted empty field and an
  empty string a quoted one, so the two stay apart. Used only when the SELECT's columns are PostgreSQL integer
  and text types (checked on the statement's result description first): another type's text form may differ
  from the row-by-row read's (a boolean's 't', a float's '1'), so such a table is read row by row.
- SQLite: the ADBC SQLite driver (https://arrow.apache.org/adbc/current/driver/sqlite.html) on the same database
  file, opened read-only. SQLite types each value, not each column, and the driver fixes a column's Arrow type from
  its first batch: a value of another type later (text in an INTEGER column) fails the read, and a column read as
  another type than the contract's is refused. Such a table is read row by row, which types each value as it
  always has (staging.contract.typed_array). A text column must be declared with TEXT affinity (it then holds no
  REAL, whose text SQLite writes otherwise than Python); text that is not UTF-8 is refused too. The driver ships
  its own SQLite library, which may be another version than Python's: the one text the two may write otherwise
  is a REAL's (CAST(1.7758123456789013e18 AS VARCHAR) is '1.7758123456789e+18' in SQLite 3.40,
  '1.7758123456789013e+18' in 3.53), so a date column whose text may be a REAL's is refused.

Either reader raises NotFast before the table is staged when it cannot read a table exactly as the row-by-row
read would; a database error is raised as SQLAlchemy raises a driver's error (``sa.exc.DBAPIError``, the
connection invalidated on a disconnect), as the row-by-row read does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import sqlalchemy as sa

from calpads.staging import contract as c

# PostgreSQL type OIDs whose COPY text is the row-by-row read's value: int2, int4, int8 / text, varchar, bpchar.
_PG_INTEGERS = {20, 21, 23}
_PG_TEXTS = {25, 1042, 1043}
_CSV_BLOCK = 4 << 20
# SQLite's text of a REAL (CAST(x AS VARCHAR) of a date column holding one): '1.5', '1.0e+20', 'Inf'. The driver's
# SQLite library may be another version than Python's, and the digits of that text changed between versions.
_REAL_TEXT = r"^-?(Inf|[0-9]*\.[0-9]*(e[-+]?[0-9]+)?)$"


class NotFast(Exception):
    """The fast read cannot stage this table exactly as the row-by-row read would (no student data in the text)."""


class ArrowReader(Protocol):
    def batches(self, query: sa.Select, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]: ...

    def close(self) -> None: ...


def raise_driver_error(conn: sa.Connection, statement: str, exc: BaseException, cursor: Any = None) -> None:
    """Raise a DB-API error of conn's driver as SQLAlchemy raises it (a SIS outage is ``sa.exc.DBAPIError``), the
    connection invalidated when the error is a disconnect; parameters never shown (they may be student data)."""
    base_error = conn.dialect.loaded_dbapi.Error
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(exc)
    raise sa.exc.DBAPIError.instance(statement, None, exc, base_error, hide_parameters=True,
                                     connection_invalidated=lost, dialect=conn.dialect) from exc


def arrow_reader(conn: sa.Connection) -> ArrowReader | None:
    """The fast reader of conn's backend, or None (MS SQL, an in-memory SQLite database, a driver not installed)."""
    name, driver = conn.dialect.name, conn.dialect.driver
    if name == "postgresql" and driver == "psycopg2":
        return PgCopyReader(conn)
    if name == "sqlite":
        return SqliteAdbcReader.open(conn)
    return None


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch in the contract's schema (its columns in order): a column of the contract's type as it is, an all-
    NULL or integer column cast (an integer's text is Python's str of it); any other type raises NotFast."""
    arrays = []
    for array, field in zip(batch.columns, schema, strict=True):
        t = array.type
        if t == field.type:
            arrays.append(array)
        elif pa.types.is_null(t) or array.null_count == len(array) or pa.types.is_integer(t):
            arrays.append(array.cast(field.type))
        else:
            raise NotFast(f"column {field.name} read as {t}")
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --------------------------------------------------------------------------- PostgreSQL: COPY ... TO STDOUT
class PgCopyReader:
    """``COPY (SELECT ...) TO STDOUT`` on the adapter's psycopg2 connection (see the module docstring)."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def close(self) -> None:
        pass

    def batches(self, query: sa.Select, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        conn = self.conn
        raw = conn.connection.dbapi_connection
        compiled = query.compile(dialect=conn.dialect)
        sql = str(compiled)
        base_error = conn.dialect.loaded_dbapi.Error
        cursor = raw.cursor()
        try:
            statement = cursor.mogrify(sql, compiled.construct_params())
            cursor.execute(b"SELECT * FROM (" + statement + b") AS staged LIMIT 0")
            types = [d.type_code for d in cursor.description]
        except base_error as exc:
            _close(cursor, base_error)
            raise_driver_error(conn, sql, exc, cursor)
        for type_code, field in zip(types, schema, strict=True):
            if type_code not in (_PG_INTEGERS if pa.types.is_integer(field.type) else _PG_TEXTS):
                _close(cursor, base_error)
                raise NotFast(f"column {field.name} is of PostgreSQL type {type_code}")
        copy = b"COPY (" + statement + b") TO STDOUT WITH (FORMAT csv, ENCODING 'UTF8')"
        yield from _copy_batches(conn, cursor, copy, sql, schema)


def _copy_batches(conn: sa.Connection, cursor: Any, copy: bytes, sql: str,
                  schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The COPY's CSV, written by a thread into a pipe, parsed here batch by batch (memory: a few blocks)."""
    read_end, write_end = os.pipe()
    errors: list[BaseException] = []

    def copy_out() -> None:
        try:
            with open(write_end, "wb", buffering=1 << 20) as sink:
                cursor.copy_expert(copy, sink)
        except BaseException as exc:   # handed to the reading thread
            errors.append(exc)

    thread = threading.Thread(target=copy_out, name="calpads-staging-copy", daemon=True)
    thread.start()
    source = open(read_end, "rb", buffering=_CSV_BLOCK)
    done, parse_error = False, None
    try:
        if source.peek(1):   # pyarrow's reader refuses an empty CSV: no rows, no batch
            reader = pcsv.open_csv(
                source, read_options=pcsv.ReadOptions(column_names=schema.names, block_size=_CSV_BLOCK),
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(column_types=schema, strings_can_be_null=True,
                                                    quoted_strings_can_be_null=False, null_values=[""]))
            for batch in reader:
                yield conform(batch, schema)
        done = True
    except (pa.ArrowInvalid, NotFast) as exc:   # a CSV that did not parse: the COPY stopped short, or a bug
        parse_error = exc
    finally:
        if not done:   # stop the COPY and read its pipe to the end, so that the connection leaves the COPY state
            try:
                conn.connection.dbapi_connection.cancel()
            except conn.dialect.loaded_dbapi.Error:   # the connection is gone already: the COPY ends by itself
                pass
            while source.read(1 << 20):
                pass
        thread.join()
        source.close()
        _close(cursor, conn.dialect.loaded_dbapi.Error)
        if not done:   # the cancelled COPY aborted the transaction: the connection runs statements again after this
            try:
                conn.connection.dbapi_connection.rollback()
            except conn.dialect.loaded_dbapi.Error:
                pass
    from psycopg2.extensions import QueryCanceledError

    ours = parse_error is not None and errors and isinstance(errors[0], QueryCanceledError)
    if errors and not ours:
        exc = errors[0]
        if isinstance(exc, conn.dialect.loaded_dbapi.Error):
            raise_driver_error(conn, sql, exc)
        raise exc
    if parse_error is not None:
        raise NotFast(f"the COPY's CSV did not parse: {type(parse_error).__name__}") from None


def _close(cursor: Any, base_error: type[BaseException]) -> None:
    try:
        cursor.close()
    except base_error:   # the connection is gone already
        pass


# --------------------------------------------------------------------------- SQLite: ADBC
def sqlite_read_only_uri(url: sa.URL) -> str | None:
    """A read-only SQLite URI of the file database ``url`` names, for a second connection (the ADBC driver's); None
    for an in-memory database or a URL with options of its own."""
    from urllib.parse import quote

    database = url.database
    if not database or database == ":memory:" or url.query or database.startswith("file:"):
        return None
    return f"file:{quote(os.path.abspath(database))}?mode=ro"


class SqliteAdbcReader:
    """The ADBC SQLite driver on the SIS database file, read-only (see the module docstring)."""

    def __init__(self, conn: sa.Connection, connect: Callable[[], Any]):
        self.conn = conn
        self._connect = connect
        self._adbc: Any = None

    @classmethod
    def open(cls, conn: sa.Connection) -> SqliteAdbcReader | None:
        """A reader of conn's file database, or None (in memory, URI options, the driver not installed)."""
        uri = sqlite_read_only_uri(conn.engine.url)
        if uri is None:
            return None
        try:
            import adbc_driver_sqlite.dbapi
        except ImportError:
            return None
        return cls(conn, lambda: adbc_driver_sqlite.dbapi.connect(uri))

    def _text_affinity(self, query: sa.Select, schema: pa.Schema) -> bool:
        """True when each of the SELECT's text columns read as stored is declared with TEXT affinity, so that it
        holds no INTEGER or REAL value (https://www.sqlite.org/datatype3.html, "Determination Of Column Affinity"):
        the driver would write a REAL's text as SQLite does, the row-by-row read as Python does."""
        stored = [e.name for e, f in zip(query.selected_columns, schema, strict=True)
                  if pa.types.is_string(f.type) and isinstance(e, sa.ColumnClause)]
        if not stored:
            return True
        table = query.get_final_froms()[0].name   # type: ignore[attr-defined]
        declared = {row[1].lower(): (row[2] or "").upper()
                    for row in self.conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}
        return all(_text_affine(declared.get(name, "")) for name in stored)

    def close(self) -> None:
        if self._adbc is not None:
            try:
                self._adbc.close()
            finally:
                self._adbc = None

    def check(self, query: sa.Select, schema: pa.Schema) -> None:
        """Raise NotFast when the SIS declares a text column of the SELECT without TEXT affinity. It asks the
        reader's SQLAlchemy connection, so it runs in that connection's thread: before ``batches`` is read in
        another (``affinity_checked``)."""
        if not self._text_affinity(query, schema):
            raise NotFast("a text column of the SIS is not of SQLite's TEXT affinity")

    def batches(self, query: sa.Select, schema: pa.Schema, batch_rows: int, *,
                affinity_checked: bool = False) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager
        import adbc_driver_sqlite
        from sqlalchemy.dialects import sqlite

        dates = [f.name for f in schema if f.name in c.DATE_COLUMNS]
        if not affinity_checked:
            self.check(query, schema)
        # A first row of the contract's types (0, ''), dropped below: the driver types each column by the values of
        # its first batch, and a column NULL throughout it (an exit code no early student has) would be INT64.
        # UNION ALL reads its SELECTs one after the other, the staging SELECT as it would alone.
        typed = sa.select(*(sa.literal(0 if pa.types.is_integer(f.type) else "").label(f.name) for f in schema))
        compiled = sa.union_all(typed, query).compile(dialect=sqlite.dialect(),
                                                      compile_kwargs={"render_postcompile": True})
        params = compiled.construct_params()
        args = tuple(params[k] for k in compiled.positiontup or ())
        with _adbc_errors(adbc_driver_manager.Error):
            if self._adbc is None:
                self._adbc = self._connect()
            cursor = self._adbc.cursor()
        try:
            with _adbc_errors(adbc_driver_manager.Error):
                cursor.adbc_statement.set_options(**{adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value:
                                                     str(batch_rows)})
                cursor.execute(str(compiled), args or None)
                reader = cursor.fetch_record_batch()
            while True:
                with _adbc_errors(adbc_driver_manager.Error):
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    batch.validate(full=True)   # text as SQLite holds it: not checked for UTF-8 by the driver
                if typed is not None:
                    batch, typed = batch.slice(1), None
                batch = conform(batch, schema)
                if any(pc.any(pc.match_substring_regex(batch.column(d), _REAL_TEXT)).as_py() for d in dates):
                    raise NotFast("a date column holds a REAL")
                yield batch
        finally:
            cursor.close()


def _text_affine(declared: str) -> bool:
    """SQLite's rules: a declared type containing INT is of INTEGER affinity; else one containing CHAR, CLOB or TEXT
    is of TEXT affinity."""
    return "INT" not in declared and any(word in declared for word in ("CHAR", "CLOB", "TEXT"))


@contextmanager
def _adbc_errors(driver_error: type[BaseException]) -> Iterator[None]:
    """An error of the ADBC driver (a value of another type than its column's first batch, a database it cannot
    open) is NotFast: the row-by-row read reads the table again, and raises a database error as it always has."""
    try:
        yield
    except (driver_error, OSError, pa.ArrowInvalid) as exc:   # the driver's stream errors arrive as OSError
        raise NotFast(f"the ADBC SQLite driver: {type(exc).__name__}") from None
