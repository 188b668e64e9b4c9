"""The SQL source's fast read (calpads.staging.sql_arrow: PostgreSQL's COPY, the ADBC SQLite driver) stages the very
tables the row-by-row read stages (SqlAdapter(fast=False)), schema and metadata included, on a dirty demo district
and on text that CSV and SQLite's typing make hard; where it cannot (a value of another type, a column of another
type), the table is staged row by row, as before; a SIS connection lost during a COPY fails the pull as a SIS
outage and leaves no staged table behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from calpads import pipeline
from calpads.failures import SisUnavailable
from calpads.run_scope import RunScope
from calpads.staging import contract as c
from calpads.staging.sql_adapter import SqlAdapter, table_select
from calpads.staging.sql_arrow import NotFast, PgCopyReader, SqliteAdbcReader, arrow_reader
from calpads.staging.store import StagedTables
from tests.conftest import PG_ADMIN_URL, fresh_pg_database
from tests.integration import test_fuzz_sis as fuzz
from tests.integration.reliability import TODAY, YEAR, context, make_sis

TABLES = list(c.TABLE_COLUMNS)
SCOPE = RunScope.from_params("SPRG", {"academic_year": YEAR}, today=TODAY)
# Text that CSV quoting, NULL-versus-empty and SQLite's storage must all carry through unchanged.
NASTY = ["", "NULL", "\\N", "a,b", 'say "hi"', "line\nbreak", "cr\r\nlf", "  padded  ", "é李Ñ", "tab\there", "\\",
         "'", "^", ",", '"']


def stage(engine: sa.Engine, root: Path, *, fast: bool, batch_rows: int = 97) -> StagedTables:
    staged = StagedTables(root)
    staged.reset()
    SqlAdapter(engine, batch_rows=batch_rows, fast=fast).stage(TABLES, SCOPE, staged)
    return staged


def assert_same_staging(engine: sa.Engine, tmp_path: Path) -> None:
    old, new = stage(engine, tmp_path / "old", fast=False), stage(engine, tmp_path / "new", fast=True)
    for table in TABLES:
        a, b = pq.read_table(old.path(table)), pq.read_table(new.path(table))
        assert a.schema.equals(b.schema, check_metadata=True), table
        assert a.equals(b, check_metadata=True), table


def fast_reads(engine: sa.Engine, table: str, batch_rows: int = 97) -> int:
    """The fast reader's rows of the table (raises NotFast where it refuses it)."""
    with engine.connect() as conn:
        reader = arrow_reader(conn)
        assert reader is not None
        try:
            return sum(b.num_rows for b in reader.batches(table_select(table, SCOPE, c.ENROLLMENT_CODES),
                                                          c.schema(table), batch_rows))
        finally:
            reader.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Iterator[str]:
    """An empty SIS database's URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/sis.db"
    else:
        with fresh_pg_database("calpads_sql_arrow") as url:
            yield url


def test_the_fast_read_stages_a_dirty_district_as_the_row_by_row_read(backend, tmp_path):
    from calpads.demo.generator import generate_district

    engine = sa.create_engine(backend)
    generate_district(engine, students=400, seed=11, dirty=0.05, academic_year=YEAR, attendance=False,
                      log=lambda _m: None)
    with engine.connect() as conn:
        assert isinstance(arrow_reader(conn), PgCopyReader if engine.dialect.name == "postgresql"
                          else SqliteAdbcReader)
    # every table goes through the fast read here (none refused), in many batches
    assert fast_reads(engine, c.PROGRAMS) > 97
    for table in TABLES:
        fast_reads(engine, table)
    assert_same_staging(engine, tmp_path)
    engine.dispose()


def test_hard_text_is_staged_as_the_row_by_row_read_stages_it(backend, tmp_path):
    engine = make_sis(sa.create_engine(backend), students=len(NASTY) + 200)
    blank_date = "" if engine.dialect.name == "sqlite" else None   # a PostgreSQL DATE holds no text
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE STUDENTS SET FIRST_NAME = :v, LAST_NAME = :v, STATE_STUDENTNUMBER = :n "
                             "WHERE ID = :id"),
                     [{"id": 150 + i, "v": v, "n": None if i % 2 else v[:10]} for i, v in enumerate(NASTY)])
        conn.execute(sa.text("UPDATE S_CA_STU_CALPADSPROGRAMS_C SET MIGRANTSTUDENTID = :v, PROGRAMENDDATE = :d "
                             "WHERE STUDENTSDCID = :dcid"),
                     [{"dcid": 1150 + i, "v": v[:11], "d": blank_date if i % 2 else None} for i, v in enumerate(NASTY)])
    fast_reads(engine, c.STUDENTS)
    assert_same_staging(engine, tmp_path)
    staged = StagedTables(tmp_path / "new")
    names = pq.read_table(staged.path(c.STUDENTS), columns=["id", "first_name", "state_studentnumber"]).to_pylist()
    by_id = {r["id"]: r for r in names}
    assert [by_id[150 + i]["first_name"] for i in range(len(NASTY))] == NASTY
    assert [by_id[150 + i]["state_studentnumber"] for i in range(len(NASTY))] == \
        [None if i % 2 else v[:10] for i, v in enumerate(NASTY)]
    engine.dispose()


def test_sqlite_values_of_another_type_are_staged_row_by_row_as_before(tmp_path):
    """SQLite keeps text in an INTEGER column, a REAL in a column declared without a type or in a DATE column: the
    ADBC driver cannot read them as the row-by-row read does, so those tables are read row by row."""
    engine = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"), students=300)
    with engine.begin() as conn:
        # blank text in an INTEGER column, past the driver's first batch: staged as NULL
        conn.exec_driver_sql("UPDATE S_CA_STU_CALPADSPROGRAMS_C SET SCHOOLID = '' WHERE ID = 10250")
        # a table whose text column has no declared type (BLOB affinity) holding REALs
        conn.exec_driver_sql("DROP TABLE S_CA_STU_X")
        conn.exec_driver_sql("CREATE TABLE S_CA_STU_X (STUDENTSDCID INTEGER, LEGALFIRSTNAME, LEGALLASTNAME TEXT, "
                             "LEGALGENDER VARCHAR(1))")
        conn.exec_driver_sql("INSERT INTO S_CA_STU_X VALUES (1001, 0.1, 'Lee', 'F'), (1002, ?, 'Lee', 'F'), "
                             "(1003, 'Ann', 'Lee', 'F')", (1 / 3,))
        # a REAL in a DATE column (NUMERIC affinity): its text differs between SQLite versions, and the driver's
        # SQLite library need not be Python's
        conn.exec_driver_sql("UPDATE STUDENTS SET DOB = ? WHERE ID = 250", (20150304 + 1 / 3,))
    for table in (c.PROGRAMS, c.STU_X, c.STUDENTS):
        with pytest.raises(NotFast):
            fast_reads(engine, table)
    assert_same_staging(engine, tmp_path)
    staged = StagedTables(tmp_path / "new")
    programs = pq.read_table(staged.path(c.PROGRAMS), columns=["id", "schoolid"]).to_pylist()
    assert [r["schoolid"] for r in programs if r["id"] == 10250] == [None]
    legal = pq.read_table(staged.path(c.STU_X), columns=["legalfirstname"]).column(0).to_pylist()
    assert legal == [str(0.1), str(1 / 3), "Ann"]   # Python's text of a REAL, as the row-by-row read gives it
    engine.dispose()


def test_postgresql_columns_of_another_type_are_staged_row_by_row_as_before(pg_database, tmp_path):
    engine = make_sis(sa.create_engine(pg_database), students=5)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE schools ALTER COLUMN school_number TYPE numeric")
        conn.exec_driver_sql("ALTER TABLE s_ca_stu_x ALTER COLUMN legalgender TYPE boolean USING NULL")
        conn.exec_driver_sql("INSERT INTO s_ca_stu_x VALUES (1001, 'Ann', 'Lee', true)")
    for table in (c.SCHOOLS, c.STU_X):
        with pytest.raises(NotFast):
            fast_reads(engine, table)
    fast_reads(engine, c.STUDENTS)
    assert_same_staging(engine, tmp_path)
    staged = StagedTables(tmp_path / "new")
    assert set(pq.read_table(staged.path(c.STU_X)).column("legalgender").to_pylist()) == {"True"}
    engine.dispose()


@pytest.mark.parametrize("rows_before", [False, True], ids=["before-any-row", "mid-row"])
def test_a_connection_lost_during_the_copy_fails_the_pull_and_leaves_no_staged_table(pg_database, tmp_path,
                                                                                      rows_before):
    import psycopg2.extensions

    make_sis(sa.create_engine(pg_database), students=50)
    killed: list[int] = []
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    class TerminatedCopy(psycopg2.extensions.cursor):
        def copy_expert(self, sql, file, size=8192):
            if b"s_ca_stu_calpadsprograms_c" in sql and not killed:
                pid = self.connection.get_backend_pid()
                with admin.connect() as a:
                    assert a.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
                killed.append(pid)
                if rows_before:   # the CSV then ends inside a row: it does not parse, and the outage is what counts
                    file.write(b'1,2,"half a ro')
            return super().copy_expert(sql, file, size)

    flaky = sa.create_engine(pg_database, connect_args={"cursor_factory": TerminatedCopy})
    ctx = context(tmp_path, "manual__lost", tmp_path / "pub")
    with pytest.raises(SisUnavailable) as caught:
        pipeline.extract(ctx, flaky)
    assert killed, "the fault was never injected"
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError), caught.value.__cause__
    staged = StagedTables(ctx.work_dir)
    assert not staged.has(c.PROGRAMS)
    assert not [p for p in staged.folder.iterdir() if p.name.startswith(".")]
    flaky.dispose()
    admin.dispose()
    # the pool's next connection reads again
    assert pipeline.extract(context(tmp_path, "manual__again", tmp_path / "pub"),
                            sa.create_engine(pg_database))["records_extracted"] == 50


@settings(max_examples=25, deadline=None)
@given(students=st.lists(fuzz.student, min_size=1, max_size=4))
def test_random_bad_sqlite_rows_are_staged_as_the_row_by_row_read_stages_them(students):
    """The fuzzed SIS of test_fuzz_sis (any type in any column, NUL and control characters in names, dates of
    every shape): each table the same, whichever read staged it."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = fuzz.build_sis(Path(tmp) / "sis.db", students)
        assert_same_staging(engine, Path(tmp))
        engine.dispose()


def test_a_copy_that_does_not_parse_is_staged_row_by_row_on_the_same_connection(pg_database, tmp_path):
    """A COPY whose CSV does not parse (here a stray line before its rows): the COPY is cancelled, its transaction
    rolled back, and the table staged row by row on the same connection, as before."""
    import psycopg2.extensions

    engine = make_sis(sa.create_engine(pg_database), students=300)
    garbled: list[bytes] = []

    class GarbledCopy(psycopg2.extensions.cursor):
        def copy_expert(self, sql, file, size=8192):
            garbled.append(sql)
            file.write(b"not,a,row\n")
            return super().copy_expert(sql, file, size)

    flaky = sa.create_engine(pg_database, connect_args={"cursor_factory": GarbledCopy}, pool_size=1, max_overflow=0)
    with pytest.raises(NotFast):
        fast_reads(flaky, c.PROGRAMS)
    old, new = stage(engine, tmp_path / "old", fast=False), stage(flaky, tmp_path / "new", fast=True, batch_rows=500)
    assert len(garbled) > len(TABLES)   # every table's COPY was garbled and fell back
    for table in TABLES:
        assert pq.read_table(old.path(table)).equals(pq.read_table(new.path(table)), check_metadata=True), table
    assert not [p for p in new.folder.iterdir() if p.name.startswith(".")]
    engine.dispose()
    flaky.dispose()


def test_a_copy_stopped_short_leaves_the_connection_usable(pg_database):
    """The COPY of a table larger than the pipe and the reader's blocks, stopped at its first batch (the reader's
    error, or the staged file's): it is cancelled, its pipe read to the end and its transaction rolled back, so
    that the connection runs statements again (the adapter reads the table row by row on it)."""
    engine = make_sis(sa.create_engine(pg_database), students=10)
    with engine.begin() as conn:   # about 60 MB of CSV
        conn.exec_driver_sql("INSERT INTO s_ca_stu_calpadsprograms_c (id, studentsdcid, schoolid, programcode, "
                             "programmembershipcode, programstartdate, migrantstudentid) "
                             "SELECT 100000 + g, 1001, 100, '101', '3', '2025-09-02', 'M' || g "
                             "FROM generate_series(1, 1200000) g")
    with engine.connect() as conn:
        reader = arrow_reader(conn)
        assert reader is not None
        batches = reader.batches(table_select(c.PROGRAMS, SCOPE), c.schema(c.PROGRAMS), 1000)
        assert next(batches).num_rows
        batches.close()   # as when the staged file cannot be written
        assert conn.exec_driver_sql("SELECT count(*) FROM s_ca_stu_calpadsprograms_c").scalar() == 1_200_010
    engine.dispose()
