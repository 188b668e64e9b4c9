"""The history store on SQLite and PostgreSQL: migrations, idempotent and serialised saves,
what last_submitted returns, the student look-up and its CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from calpads.failures import StoreUnavailable
from calpads.history import cli, schema
from calpads.history.store import HistoryStore, _record_rows
from tests.unit.test_history_support import (  # noqa: F401  (fixtures)
    LAYOUT,
    LEA,
    YEAR,
    bob,
    frame,
    history_engine_fixture,
    pg_history_url_fixture,
    rec,
    store_fixture,
)

TABLES = {schema.RUNS, schema.LOG, schema.CURRENT, schema.SCOPES, schema.LOCKS, schema.LEASES, schema.VERSION_TABLE}


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()


def many(n: int, start: int = 0) -> pd.DataFrame:
    return frame(*[rec(f"{i}.1", ssid=f"{2_000_000_000 + i}", local_student_id=str(10_000 + i))
                   for i in range(start, start + n)])


def save(store: HistoryStore, df: pd.DataFrame, run_id: str, **kw) -> int:
    return store.save_run(df, LAYOUT, lea=kw.get("lea", LEA), academic_year=kw.get("year", YEAR), run_id=run_id,
                          params=kw.get("params", {"mode": "submission"}))


# ------------------------------------------------------------------ migrations
def test_migrate_from_empty_creates_the_tables_and_twice_is_a_no_op(history_engine):
    store = HistoryStore(history_engine)
    assert store.current_revision() is None
    store.migrate()
    assert TABLES <= set(sa.inspect(history_engine).get_table_names())
    assert store.current_revision() == store.head_revision() == "0003"
    assert schema.HEAD_REVISION == store.head_revision()   # migrate's check without Alembic reads this constant
    with history_engine.connect() as conn:
        version = sa.table(schema.VERSION_TABLE, sa.column("version_num"))
        assert conn.execute(sa.select(version.c.version_num)).scalars().all() == ["0003"]
    save(store, many(2), "run1")
    assert "calpads_history_records" not in sa.inspect(history_engine).get_table_names()
    store.migrate()                                  # again: nothing changes, data kept
    assert count(history_engine, schema.LOG) == 2
    assert count(history_engine, schema.VERSION_TABLE) == 1
    # The store's tables leave other tables (and an "alembic_version" of someone else) alone.
    assert "alembic_version" not in sa.inspect(history_engine).get_table_names()


def test_several_processes_migrating_a_fresh_database_at_once_all_succeed(history_engine):
    url = history_engine.url.render_as_string(hide_password=False)
    code = "import sys, sqlalchemy as sa; from calpads.history.store import HistoryStore; " \
           "HistoryStore(sa.create_engine(sys.argv[1])).migrate()"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in results] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert HistoryStore(history_engine).current_revision() == "0003"
    assert count(history_engine, schema.VERSION_TABLE) == 1


# ------------------------------------------------------------------ saving
def test_save_is_idempotent_per_run(store):
    df = many(5)
    assert save(store, df, "run1") == 5
    assert save(store, df, "run1") == 0                 # Airflow retry/clear of the same run
    assert count(store.engine, schema.LOG) == 5
    runs = store.runs("SPRG")
    assert runs["run_id"].tolist() == ["run1"]
    assert runs.loc[0, "record_count"] == 5 and runs.loc[0, "delete_count"] == 0
    assert json.loads(runs.loc[0, "params"]) == {"mode": "submission"}


def test_an_empty_run_is_recorded_and_counted_once(store):
    assert save(store, frame(), "run1") == 0
    assert save(store, frame(), "run1") == 0
    assert store.runs()["record_count"].tolist() == [0]


def test_saved_rows_carry_key_hash_type_and_fields(store):
    d = {**bob("2.23", program_code="108", membership_start_date="20251001"), "transaction_type": "D"}
    save(store, frame(rec("1.21"), d), "run1")
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.log).order_by(schema.log.c.line)).mappings().all()
        current = conn.execute(sa.select(schema.current)).mappings().all()
        scopes = conn.execute(sa.select(schema.scopes)).mappings().all()
    assert [r["transaction_type"] for r in rows] == [None, "D"] and [r["line"] for r in rows] == [1, 2]
    assert rows[0]["op_key"] == "7654321\x1f1000000001\x1f101\x1f20250902\x1f"
    # The fields as the published line (caret-joined, blank for None); the D repeats them.
    assert rows[1]["fields"] == "^".join("" if d[c] is None else d[c] for c in LAYOUT.columns)
    assert (rows[0]["local_student_id"], rows[1]["ssid"]) == ("1001", "1000000002")
    # What CALPADS holds: the add only (a D of a key never sent holds nothing), with its hash.
    assert [(r["op_key"], r["line"], r["local_record_id"], r["program_code"]) for r in current] == [
        (rows[0]["op_key"], 1, "1.21", "101")]
    # The hash: sha256's first 128 bits of the updatable values joined by U+001F (16 bytes on PostgreSQL).
    stored = current[0]["record_hash"]
    stored = stored.hex() if isinstance(stored, bytes) else stored
    joined = "\x1f".join(rec("1.21")[c] or "" for c in LAYOUT.updatable_fields)
    assert stored == hashlib.sha256(joined.encode()).hexdigest()[:32]
    assert [(s["id"], s["record_type"], s["reporting_lea"], s["academic_year"]) for s in scopes] == [
        (current[0]["scope_id"], "SPRG", LEA, YEAR)]
    assert store.runs().loc[0, ["add_update_count", "delete_count"]].tolist() == [1, 1]


def test_values_round_trip_exactly(store):
    # Backslashes, tabs, newlines, quotes, non-ASCII and "\N" survive (COPY CSV on PostgreSQL); "" reads back as
    # None, as the published file writes both (and the key and hash treat them alike).
    odd = rec("1.21", legal_first_name='Zoë\t"Q"', legal_last_name="O'Brien\\N\nx\r", cpa_id="", migrant_id="\\N")
    save(store, frame(odd), "run1")
    last = store.last_submitted("SPRG", LEA, YEAR, with_fields=True)
    assert {c: last.loc[0, c] for c in LAYOUT.columns} == {**odd, "cpa_id": None}


def as_arrow(df: pd.DataFrame) -> pa.Table:
    """The records as the pipeline's save reads its work file: Arrow text (a column without a value typed null)."""
    return pa.table({c: pa.array([None if pd.isna(v) else v for v in df[c]], pa.string() if df[c].notna().any()
                                 else pa.null()) for c in df.columns})


@pytest.mark.parametrize("form", [frame, lambda *r: as_arrow(frame(*r))], ids=["frame", "arrow"])
def test_a_value_holding_a_caret_is_refused_naming_the_record(store, form):
    with pytest.raises(ValueError, match=r"caret.*1\.21"):
        save(store, form(rec("1.20"), rec("1.21", legal_last_name="A^B")), "run1")
    assert count(store.engine, schema.LOG) == 0 and store.runs().empty


@pytest.mark.parametrize("form", [frame, lambda *r: as_arrow(frame(*r))], ids=["frame", "arrow"])
def test_records_of_another_lea_or_year_are_refused(store, form):
    with pytest.raises(ValueError, match="1 records have a reporting_lea"):
        save(store, form(rec("1.20"), rec("1.21", reporting_lea="9999999")), "run1")
    with pytest.raises(ValueError, match="academic_year_id"):
        save(store, form(rec("1.21")), "run1", year="2024-2025")
    assert count(store.engine, schema.LOG) == 0 and store.runs().empty


def test_a_copy_refused_by_postgresql_fails_as_the_store_without_the_rows_values(pg_history_url):
    # PostgreSQL text holds no NUL: the server refuses the COPY. Its error can quote the row; the run's error, and
    # every error it was raised from, name the store and the reason only.
    store = HistoryStore(sa.create_engine(pg_history_url))
    store.migrate()
    with pytest.raises(StoreUnavailable, match=r"could not save the submission history") as raised:
        save(store, frame(rec("1.20"), rec("1.21", legal_last_name="Zed\x00Quill")), "run1")
    chain, exc = [], raised.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert len(chain) >= 2 and "0x00" in chain[1]          # the server's reason travels
    assert not any(part in text for text in chain for part in ("Zed", "Quill", "1000000001", "Ann"))
    assert count(store.engine, schema.LOG) == 0 and store.runs().empty


def test_an_arrow_table_of_the_records_gives_the_rows_of_their_frame():
    d = {**bob("2.23", program_code="108"), "transaction_type": "D"}
    odd = rec("1.21", legal_first_name='Zoë\t"Q"', legal_last_name="O'Brien\\N\nx\r", cpa_id="")
    records = frame(odd, d, rec("1.22"))
    table = as_arrow(records).drop_columns(["migrant_id"])      # a layout column the table lacks reads as blank
    assert pa.types.is_null(table["dsea"].type)
    from_frame = _record_rows(records, LAYOUT, first_line=7)
    assert _record_rows(table, LAYOUT, first_line=7).equals(from_frame)
    assert from_frame["line"].to_pylist() == [7, 8, 9]
    assert from_frame["transaction_type"].to_pylist() == [None, "D", None]


@pytest.mark.parametrize("same_run", [True, False])
def test_concurrent_saves_from_two_threads_serialise_without_duplicates(store, same_run):
    n = 3000
    frames = [many(n), many(n) if same_run else many(n, start=n)]
    run_ids = ["run1", "run1" if same_run else "run2"]
    barrier = threading.Barrier(2)
    results: list[int] = [0, 0]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = save(store, frames[i], run_ids[i])
        except BaseException as e:  # noqa: BLE001  (reported by the assertion below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    if same_run:
        assert sorted(results) == [0, n]
        assert count(store.engine, schema.LOG) == n and len(store.runs()) == 1
    else:
        assert results == [n, n]
        assert count(store.engine, schema.LOG) == 2 * n
        # Each run's lines are 1..n under its own run row.
        with store.engine.connect() as conn:
            blocks = conn.execute(sa.select(schema.log.c.run_pk, sa.func.min(schema.log.c.line),
                                            sa.func.max(schema.log.c.line)).group_by(schema.log.c.run_pk)).all()
        assert sorted((lo, hi) for _, lo, hi in blocks) == [(1, n), (1, n)]
    assert len(store.last_submitted("SPRG", LEA, YEAR)) == (n if same_run else 2 * n)


# ------------------------------------------------------------------ reading
def test_last_submitted_is_the_latest_row_per_key_without_deleted_keys(store):
    a, c = rec("1.21"), bob("2.23", program_code="108", membership_start_date="20251001")
    save(store, frame(a, c), "run1")
    save(store, frame({**a, "membership_end_date": "20260115"}, {**c, "transaction_type": "D"}), "run2")
    last = store.last_submitted("SPRG", LEA, YEAR, with_fields=True)
    assert last["local_record_id"].tolist() == ["1.21"]
    assert last.loc[0, "membership_end_date"] == "20260115" and last.loc[0, "hist_run_id"] == "run2"
    # What the diff reads: keys, hashes and the scope's columns, not the fields.
    narrow = store.last_submitted("SPRG", LEA, YEAR)
    assert "membership_end_date" not in narrow.columns
    assert narrow["hist_op_key"].tolist() == last["hist_op_key"].tolist()
    before_run2 = store.last_submitted("SPRG", LEA, YEAR, exclude_run_id="run2", with_fields=True)
    assert sorted(before_run2["local_record_id"]) == ["1.21", "2.23"]
    assert before_run2.set_index("local_record_id").loc["1.21", "membership_end_date"] is None
    assert before_run2.set_index("local_record_id").loc["2.23", "hist_run_id"] == "run1"
    # The same history as of run1 (history_base): run2 left out.
    as_of = store.last_submitted("SPRG", LEA, YEAR, as_of=int(before_run2["hist_run_pk"].max()), with_fields=True)
    assert as_of.sort_values("local_record_id").reset_index(drop=True).equals(
        before_run2.sort_values("local_record_id").reset_index(drop=True))
    # a run id never saved excludes nothing
    assert len(store.last_submitted("SPRG", LEA, YEAR, exclude_run_id="nope")) == 1


def test_the_arrow_read_of_the_current_state_is_the_row_read(store, monkeypatch):
    from calpads.history import store as store_module

    _read_current_adbc = store_module._read_current_adbc

    # Blank state columns (NULL in the table) in the first rows, several batches, a second scope left out.
    rows = [rec(f"{i}.1", ssid=f"{2_000_000_000 + i}", local_student_id=None if i < 3 else str(10_000 + i),
                school_of_attendance=None if i % 2 else "7654321") for i in range(7)]
    save(store, frame(*rows), "run1")
    save(store, frame(rec("9.1", academic_year_id="2024-2025")), "other", year="2024-2025")
    monkeypatch.setattr(store_module, "READ_BATCH", 2)
    pg = store.engine.dialect.name == "postgresql"
    with store._read_transaction() as conn:
        scope_id = conn.execute(sa.select(schema.scopes.c.id).where(schema.scopes.c.academic_year == YEAR)).scalar()
        read = store_module._read_current_copy if pg else store_module._read_current_adbc
        fast = read(conn, scope_id, store_module.STATE_READ)
        lean = read(conn, scope_id, ["op_key", "record_hash", "program_code"])
        for name in ("_read_current_copy", "_read_current_adbc"):
            monkeypatch.setattr(store_module, name, lambda *a: None)
        by_rows = store_module._read_current(conn, "SPRG", LEA, YEAR)
    assert fast is not None and fast.num_rows == 7 and fast.equals(by_rows)
    assert lean.equals(by_rows.select(["op_key", "record_hash", "program_code"]))
    assert fast["local_student_id"].null_count == 3 and fast["school_of_attendance"].null_count == 3
    if not pg:   # under WAL another connection could read a later commit than this transaction: the rows are read
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        with store._read_transaction() as conn:
            assert _read_current_adbc(conn, scope_id, store_module.STATE_READ) is None


def test_saves_in_several_insert_statements_keep_every_row(store, monkeypatch):
    from calpads.history import store as store_module

    monkeypatch.setattr(store_module, "SQLITE_ROWS_PER_INSERT", 3)   # 7 rows: statements of 3, 3 and 1
    first = many(7)
    assert save(store, first, "run1") == 7
    second = first.iloc[:5].copy()
    second.loc[0:3, "membership_end_date"] = "20260115"          # four updates (upserted over run1's rows)
    second.loc[4, "transaction_type"] = "D"                        # one delete
    second = pd.concat([second, many(2, start=7)], ignore_index=True)   # two adds
    assert save(store, second, "run2") == 7
    assert count(store.engine, schema.LOG) == 14
    last = store.last_submitted("SPRG", LEA, YEAR, with_fields=True).sort_values("local_record_id")
    expected = pd.concat([second.iloc[:4], first.iloc[5:], second.iloc[5:]]).sort_values("local_record_id")
    assert last["local_record_id"].tolist() == expected["local_record_id"].tolist()
    assert last["membership_end_date"].tolist() == expected["membership_end_date"].tolist()
    assert last["hist_run_id"].tolist() == ["run2"] * 4 + ["run1"] * 2 + ["run2"] * 2


def test_records_for_student_and_the_cli(store, capsys):
    a = rec("1.21")
    save(store, frame(a, bob("2.23")), "run1")
    save(store, frame({**a, "membership_end_date": "20260115"}), "run2")
    mine = store.records_for_student("SPRG", local_student_id="1001")
    assert mine["run_id"].tolist() == ["run1", "run2"]
    assert mine["membership_end_date"].tolist() == [None, "20260115"]
    assert store.records_for_student("SPRG", ssid="1000000002")["local_record_id"].tolist() == ["2.23"]
    assert store.records_for_student("SPRG", local_student_id="1001", lea="0000000").empty
    with pytest.raises(ValueError):
        store.records_for_student("SPRG")

    url = store.engine.url.render_as_string(hide_password=False)
    assert cli.main(["student", "--record-type", "sprg", "--local-id", "1001", "--url", url]) == 0
    out = capsys.readouterr().out
    assert out.count("--- ") == 2 and "20260115" in out and "run2" in out
    assert cli.main(["student", "--record-type", "SPRG", "--local-id", "1001", "--url", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["local_record_id"] for r in rows] == ["1.21", "1.21"]
    assert cli.main(["runs", "--url", url, "--format", "csv"]) == 0
    assert [ln.split(",")[4] for ln in capsys.readouterr().out.splitlines()[1:]] == ["run1", "run2"]
