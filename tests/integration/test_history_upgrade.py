"""Revision 0003 converts a store written by the code before it without losing a row, on SQLite and PostgreSQL.

The store is tests/fixtures/history_0002.sqlite, written by that code's ``HistoryStore.save_run``
(tests/fixtures/make_history_0002_store.py says how): SPRG runs of two LEAs with adds, updates, a delete, a
key deleted and sent again, a key repeated in one run, blank and missing values; a SENR run; an ODS seed; a
lease. On PostgreSQL its rows are copied into a database migrated to 0002. Expected values are worked out
here from the old table's rows (latest row per key, not a D), not from the new code's output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.history import schema
from calpads.history.store import HistoryStore
from calpads.layouts import load_layout
from tests.conftest import require_postgres  # noqa: F401

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "history_0002.sqlite"
OLD = "calpads_history_records"
OLD_COLUMNS = ["id", "run_pk", "run_id", "record_type", "reporting_lea", "academic_year", "op_key", "key_values",
               "updatable_hash", "transaction_type", "local_student_id", "ssid", "fields", "saved_at"]


def old_records_table() -> sa.TableClause:
    """The table the code before 0003 wrote (revision 0001), for writing and reading rows the old way."""
    return sa.table(OLD, *(sa.column(c) for c in OLD_COLUMNS))


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(request, tmp_path) -> sa.Engine:
    """A store at revision 0002 holding the fixture's rows."""
    if request.param == "sqlite":
        shutil.copy(FIXTURE, tmp_path / "store.db")
        engine = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    else:
        from alembic import command

        engine = sa.create_engine(request.getfixturevalue("pg_database"))
        with engine.begin() as conn:
            command.upgrade(HistoryStore(engine)._alembic_config(conn), "0002")
        source = sa.create_engine(f"sqlite:///{FIXTURE}")
        meta = sa.MetaData()
        with source.connect() as src, engine.begin() as dst:
            for name in (schema.RUNS, OLD, schema.LEASES):
                table = sa.Table(name, meta, autoload_with=dst)
                rows = [dict(r) for r in src.execute(sa.select(sa.Table(name, sa.MetaData(), autoload_with=src)))
                        .mappings()]
                dst.execute(table.insert(), rows)
            for name in (schema.RUNS, OLD):
                last_id = f"(SELECT max(id) FROM {name})"  # noqa: S608  (the store's own table names)
                dst.execute(sa.text(f"SELECT setval(pg_get_serial_sequence(:t, 'id'), {last_id})"), {"t": name})
        source.dispose()
    yield engine
    engine.dispose()


def _hex(value: bytes | str) -> str:
    return value.hex() if isinstance(value, bytes) else value


def blank_as_none(fields: dict) -> dict:
    return {k: (None if v in ("", None) else v) for k, v in fields.items()}


def test_upgrade_keeps_every_record_key_hash_and_fields(old_store):
    store = HistoryStore(old_store)
    assert store.current_revision() == "0002"
    with old_store.connect() as conn:
        old_rows = [dict(r) for r in conn.execute(sa.select(old_records_table()).order_by(sa.text("id"))).mappings()]
        old = pd.DataFrame(old_rows, dtype=object)
        runs_before = conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id)).all()
        leases_before = conn.execute(sa.select(schema.leases)).all()
    assert len(old) == 22 and set(old["record_type"]) == {"SPRG", "SENR"}

    store.migrate()
    assert store.current_revision() == "0003"
    with old_store.connect() as conn:
        assert OLD not in sa.inspect(conn).get_table_names()
        log = conn.execute(sa.select(schema.log).order_by(schema.log.c.run_pk, schema.log.c.line)).mappings().all()
        sc = schema.scopes.c
        current = conn.execute(sa.select(schema.current, sc.record_type, sc.reporting_lea, sc.academic_year).join(
            schema.scopes, sc.id == schema.current.c.scope_id)).mappings().all()
        assert conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id)).all() == runs_before
        assert conn.execute(sa.select(schema.leases)).all() == leases_before

    # The transactions sent: every old row, in order, same run, key, action, student ids and fields.
    def decoded(row) -> dict:
        columns = load_layout(runs_type[row["run_pk"]]).columns
        values = row["fields"].split("^")
        assert len(values) == len(columns)
        return blank_as_none(dict(zip(columns, values, strict=True)))

    runs_type = {r.id: r.record_type for r in runs_before}
    ids = ["op_key", "transaction_type", "local_student_id", "ssid"]
    assert [(r["run_pk"], r["line"], *(r[c] for c in ids)) for r in log] == [
        (r["run_pk"], r["id"], *(r[c] for c in ids)) for r in old_rows]
    assert [decoded(r) for r in log] == [blank_as_none(json.loads(r["fields"])) for r in old_rows]

    # What CALPADS holds: the latest old row per key, unless a D; its hash, and its fields through the log.
    latest = old.sort_values("id").groupby(["record_type", "reporting_lea", "academic_year", "op_key"]).tail(1)
    latest = latest[latest["transaction_type"].ne("D") | latest["transaction_type"].isna()]
    # The hash kept: the stored sha256's first 128 bits (16 bytes on PostgreSQL, 32 hex digits on SQLite).
    expected = {(r.record_type, r.reporting_lea, r.academic_year, r.op_key): (r.updatable_hash[:32], r.run_pk, r.id)
                for r in latest.itertuples()}
    assert {(r["record_type"], r["reporting_lea"], r["academic_year"], r["op_key"]):
            (_hex(r["record_hash"]), r["run_pk"], r["line"]) for r in current} == expected
    assert len(expected) == 17     # 9 + 2 seeded of LEA 1234567 (record 2 back after its D, 3 once), 3 + 3 others

    for (record_type, lea, year), group in latest.groupby(["record_type", "reporting_lea", "academic_year"]):
        got = store.last_submitted(record_type, lea, year, with_fields=True)
        columns = load_layout(record_type).columns
        assert sorted(zip(got["hist_op_key"], got["hist_hash"], strict=True)) == sorted(
            zip(group["op_key"], group["updatable_hash"].str[:32], strict=True))
        by_key = {k: blank_as_none({c: got.at[i, c] for c in columns}) for i, k in enumerate(got["hist_op_key"])}
        assert by_key == {k: blank_as_none(json.loads(f)) for k, f in zip(group["op_key"], group["fields"],
                                                                           strict=True)}

    # The history before a migrated run, read from the log: record 2 is back to its D (gone), 3 to its first row.
    pk = {r.run_id: r.id for r in runs_before}["manual__2025-11-01"]
    prior = old[(old["run_pk"] < pk) & (old["record_type"] == "SPRG") & (old["reporting_lea"] == "1234567")]
    prior = prior.sort_values("id").groupby("op_key").tail(1)
    prior = prior[prior["transaction_type"].isna()]
    before = store.last_submitted("SPRG", "1234567", "2025-2026", exclude_run_id="manual__2025-11-01")
    assert sorted(zip(before["hist_op_key"], before["hist_hash"], strict=True)) == sorted(
        zip(prior["op_key"], prior["updatable_hash"].str[:32], strict=True))

    # A migrated run saved again saves nothing (an Airflow clear after the upgrade); a new run saves.
    sprg = load_layout("SPRG")
    again = store.last_submitted("SPRG", "1234567", "2025-2026", with_fields=True)[sprg.columns]
    assert store.save_run(again, sprg, lea="1234567", academic_year="2025-2026", run_id="manual__2025-11-01",
                          params={}) == 0
    assert store.save_run(again.iloc[:1], sprg, lea="1234567", academic_year="2025-2026", run_id="after",
                          params={}) == 1
