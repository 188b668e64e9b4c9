"""One calpads_store serves several LEAs: every public method of its stores, called with LEA B's code, sees
nothing of LEA A's and changes none of LEA A's rows (SQLite and PostgreSQL).

The methods are found by introspection (calpads.history.store.HistoryStore, calpads.quality.staging.CountStore,
calpads.afterschool.store.AfterschoolStore, and the ODS functions that save or compare for an LEA): each one is
either called below with LEA B's code (CALLS) and must take an ``lea`` parameter, or is on the LEA_FREE list with
the reason it needs none. A new store method without an LEA fails this test until it is given one or a reason.
calpads.readiness reads the publish folder only (no store table)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.afterschool.store import AfterschoolNotImported, AfterschoolStore
from calpads.history import ods
from calpads.history.diff import HIST_RUN_ID, ScopeFilter
from calpads.history.ods import OdsFormatError
from calpads.history.store import HistoryStore
from calpads.quality.staging import CountStore
from calpads.run_scope import RunScope
from tests.unit.test_history_support import LAYOUT, bob, frame, rec

LEA_A, LEA_B = "1234567", "7777777"
YEAR, LAST_YEAR = "2025-2026", "2024-2025"
KEY = "scope-key-of-the-same-run-parameters"
SHARED_RUN = "scheduled__2026-06-20T02:00:00+00:00"   # two LEAs' DAGs scheduled at the same time: one run id

STORES: dict[str, type] = {"HistoryStore": HistoryStore, "CountStore": CountStore,
                           "AfterschoolStore": AfterschoolStore}
ODS_FUNCTIONS = ("seed_history", "compare_for_run")   # calpads.history.ods: the ODS file saved or compared per LEA

LEA_FREE = {
    "HistoryStore.migrate": "creates/upgrades the store's tables: one schema for every LEA",
    "HistoryStore.current_revision": "the schema's Alembic revision, not data",
    "HistoryStore.head_revision": "the code's latest Alembic revision, not data",
    "HistoryStore.fields_of": "reads the log lines (run_pk, line) that an LEA-scoped last_submitted returned",
    "CountStore.ensure": "creates the counts table: one schema for every LEA",
    "AfterschoolStore.start_writeback": "inserts one write-back run row whose values carry its reporting_lea "
                                        "(NOT NULL): it cannot be written without an LEA",
    "AfterschoolStore.finish_writeback": "updates the one row whose id start_writeback returned for the LEA's run",
    "AfterschoolStore.add_audit": "inserts audit rows that carry their reporting_lea (NOT NULL)",
    "AfterschoolStore.set_audit_status": "updates the audit rows of the write-back run id start_writeback returned",
}


def public_methods() -> set[str]:
    found = {f"{name}.{m}" for name, cls in STORES.items()
             for m, fn in inspect.getmembers(cls, inspect.isfunction) if not m.startswith("_")}
    return found | {f"ods.{f}" for f in ODS_FUNCTIONS}


def _callable(qualname: str) -> Callable[..., Any]:
    owner, name = qualname.split(".")
    return getattr(ods, name) if owner == "ods" else getattr(STORES[owner], name)


# ------------------------------------------------------------------------------------------ LEA A's rows
A_START = {"1.1": "20250902", "1.2": "20251001"}     # Ann's two memberships of program 101


def a_records(*ids: str, **fields: Any) -> pd.DataFrame:
    return frame(*[rec(i, reporting_lea=LEA_A, membership_start_date=A_START[i], **fields) for i in ids],
                 bob("2.1", reporting_lea=LEA_A))


def b_records(year: str = YEAR) -> pd.DataFrame:
    return frame(rec("9.1", reporting_lea=LEA_B, academic_year_id=year, local_student_id="9001", ssid="1000000099"))


def sessions(lea_student: str) -> pd.DataFrame:
    return pd.DataFrame([{"line": 2, "student_number": lea_student, "student_id": 1, "school_code": "7654321",
                          "schoolid": 100, "session_date": "2025-10-01", "minutes": 120, "program": "ELO-P"}])


def fill_lea_a(engine: sa.Engine, tmp_path: Path) -> dict[str, Any]:
    """LEA A's history (two runs, a lease), staging counts, afterschool import and write-back; LEA B's
    history of another year."""
    hs = HistoryStore(engine)
    hs.migrate()
    hs.save_run(a_records("1.1", "1.2"), LAYOUT, lea=LEA_A, academic_year=YEAR, run_id=SHARED_RUN, params={})
    changed = a_records("1.1", membership_end_date="20260115")
    gone = frame(rec("1.2", reporting_lea=LEA_A, membership_start_date=A_START["1.2"], transaction_type="D"))
    hs.save_run(pd.concat([changed, gone], ignore_index=True), LAYOUT, lea=LEA_A, academic_year=YEAR,
                run_id="a2", params={})
    base, _ = hs.history_base("SPRG", LEA_A, YEAR, "a3")
    hs.claim_submission("SPRG", LEA_A, YEAR, "a3", base)
    hs.save_run(b_records(LAST_YEAR), LAYOUT, lea=LEA_B, academic_year=LAST_YEAR, run_id="b0", params={})

    counts = CountStore(engine)
    counts.save(record_type="SPRG", lea=LEA_A, academic_year=YEAR, key=KEY, run_id=SHARED_RUN,
                counts={"students": 1500, "programs": 900}, accepted=True)

    af = AfterschoolStore(engine)
    af.stage(lea=LEA_A, academic_year=YEAR, checksum="a" * 64, source="a.csv", run_id=SHARED_RUN, rows_total=1,
             accepted=sessions("1001"), held=0, summary={})
    pk = af.start_writeback(reporting_lea=LEA_A, academic_year=YEAR, dag_id="afterschool_writeback", run_id=SHARED_RUN,
                            write_mode="write", target="sql:U_AFTERSCHOOL", actor="etl", status="planned")
    af.add_audit([{"writeback_run_pk": pk, "reporting_lea": LEA_A, "run_id": SHARED_RUN, "actor": "etl",
                   "written_at": pd.Timestamp("2025-10-02", tz="UTC").to_pydatetime(), "target": "sql:U_AFTERSCHOOL",
                   "action": "insert", "studentid": 1, "local_student_id": "1001", "participation_date": "2025-10-01",
                   "program": "ELO-P", "before": None, "after": "{}", "status": "pending"}])
    af.set_audit_status(pk, "done")

    ods_file = tmp_path / "ods_a.txt"
    lines = ["^".join(["SPRG-R", *("" if v is None else str(v) for v in r[1:]), "20251001", "20251002"])
             for r in a_records("1.1").itertuples(index=False)]
    ods_file.write_text("\n".join(lines) + "\n")
    return {"a_local_ids": {"1001", "1002"}, "a_ssids": {"1000000001", "1000000002"}, "ods_a": ods_file}


def dump(engine: sa.Engine) -> dict[str, set[tuple]]:
    """Every row of every table of the store."""
    md = sa.MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        return {t.name: {tuple(r) for r in conn.execute(sa.select(t)).all()} for t in md.sorted_tables}


def a_view(engine: sa.Engine) -> dict[str, Any]:
    """What LEA A reads through the public methods."""
    hs, af = HistoryStore(engine), AfterschoolStore(engine)
    last = hs.last_submitted("SPRG", LEA_A, YEAR, with_fields=True)
    return {"last": last.sort_values("hist_op_key").reset_index(drop=True).to_dict("records"),
            "runs": hs.runs(lea=LEA_A)["run_id"].tolist(), "base": hs.history_base("SPRG", LEA_A, YEAR, "x"),
            "counts": CountStore(engine).previous(record_type="SPRG", lea=LEA_A, key=KEY, run_id="x"),
            "sessions": af.current_sessions(LEA_A, YEAR).to_dict("records"),
            "audit": af.audit_rows(SHARED_RUN, lea=LEA_A)["status"].tolist()}


# ------------------------------------------------------------------------------------------ LEA B's calls
def calls(engine: sa.Engine, tmp_path: Path, a: dict[str, Any]) -> dict[str, Callable[[], None]]:
    """Per public method: a call with LEA B's code and what LEA B must (not) see."""
    hs, counts, af = HistoryStore(engine), CountStore(engine), AfterschoolStore(engine)
    a_pks = set(hs.runs(lea=LEA_A)["run_id"])

    def last_submitted() -> None:
        for kwargs in ({}, {"exclude_run_id": "a2"}, {"exclude_run_id": SHARED_RUN}, {"as_of": 1},
                       {"with_fields": True}):
            assert hs.last_submitted("SPRG", LEA_B, YEAR, **kwargs).empty, kwargs
        other_year = hs.last_submitted("SPRG", LEA_B, LAST_YEAR, with_fields=True)
        assert set(other_year[HIST_RUN_ID]) == {"b0"} and set(other_year["local_student_id"]) == {"9001"}

    def history_base() -> None:
        assert hs.history_base("SPRG", LEA_B, YEAR, "a2") == (0, False)      # A's saved run id is not B's
        assert hs.history_base("SPRG", LEA_B, YEAR, SHARED_RUN) == (0, False)

    def claim_submission() -> None:                     # A holds a lease for the year: B is not blocked by it
        hs.claim_submission("SPRG", LEA_B, YEAR, "a3", 0)

    def release_submission() -> None:
        assert hs.release_submission("SPRG", LEA_B, YEAR, "not-b") is False

    def save_run() -> None:
        with pytest.raises(ValueError, match="reporting_lea"):            # A's records are never saved as B's
            hs.save_run(a_records("1.1"), LAYOUT, lea=LEA_B, academic_year=YEAR, run_id="b-wrong", params={})
        # The run id A saved under is free for B (saves are once per record type, LEA and run id).
        assert hs.save_run(b_records(), LAYOUT, lea=LEA_B, academic_year=YEAR, run_id=SHARED_RUN, params={},
                           expected_base=0) == 1
        assert set(hs.last_submitted("SPRG", LEA_B, YEAR)["local_student_id"]) == {"9001"}

    def runs() -> None:
        got = hs.runs("SPRG", LEA_B)
        assert set(got["reporting_lea"]) <= {LEA_B} and not set(got["run_id"]) & (a_pks - {SHARED_RUN})
        assert hs.runs("SPRG", LEA_B, YEAR)["run_id"].tolist() in ([], [SHARED_RUN])

    def records_for_student() -> None:
        for lid in a["a_local_ids"]:
            assert hs.records_for_student("SPRG", local_student_id=lid, lea=LEA_B).empty
        for ssid in a["a_ssids"]:
            assert hs.records_for_student("SPRG", ssid=ssid, lea=LEA_B).empty

    def previous() -> None:
        assert counts.previous(record_type="SPRG", lea=LEA_B, key=KEY, run_id="b1") is None

    def save() -> None:                     # the same run id and scope key: B's counts are B's own rows
        counts.save(record_type="SPRG", lea=LEA_B, academic_year=YEAR, key=KEY, run_id=SHARED_RUN,
                    counts={"students": 3}, accepted=True)
        assert counts.previous(record_type="SPRG", lea=LEA_B, key=KEY, run_id="b2") == {"students": 3}

    def find_import() -> None:
        assert af.find_import(LEA_B, "a" * 64) is None

    def stage() -> None:                    # the same file (checksum) is new for B, and replaces only B's year
        _, now = af.stage(lea=LEA_B, academic_year=YEAR, checksum="a" * 64, source="b.csv", run_id=SHARED_RUN,
                          rows_total=1, accepted=sessions("9001"), held=0, summary={})
        assert now is True
        assert af.current_sessions(LEA_B, YEAR)["student_number"].tolist() == ["9001"]

    def current_sessions() -> None:
        assert af.current_sessions(LEA_B, YEAR).empty

    def year_import() -> None:
        assert af.year_import(LEA_B, YEAR) is None

    def staged() -> None:
        with pytest.raises(AfterschoolNotImported, match=LEA_B):
            af.staged(LEA_B, YEAR)

    def written_days() -> None:
        assert af.written_days(LEA_B, "2025-07-01", "2026-06-30").empty

    def last_import() -> None:
        assert af.last_import(LEA_B) is None

    def audit_rows() -> None:
        assert af.audit_rows(SHARED_RUN, lea=LEA_B).empty and af.audit_rows(lea=LEA_B).empty

    def writeback_runs() -> None:
        assert af.writeback_runs(lea=LEA_B).empty

    def seed_history() -> None:             # A's ODS file is refused for B: nothing saved
        with pytest.raises(OdsFormatError, match=f"Reporting LEA is not {LEA_B}"):
            ods.seed_history(hs, str(a["ods_a"]), LAYOUT, lea=LEA_B, academic_year=YEAR)

    def compare_for_run() -> None:
        scope = RunScope.from_params("SPRG", {"academic_year": YEAR, "ods_file": str(a["ods_a"])},
                                     today=date(2026, 5, 1))
        ctx = pipeline.RunContext("SPRG", "calpads_sprg", "b_ods", scope, tmp_path / "work", tmp_path / "pub",
                                  lea_code=LEA_B)
        with pytest.raises(OdsFormatError, match=f"Reporting LEA is not {LEA_B}"):
            ods.compare_for_run(ctx, b_records(), b_records().iloc[:0], ScopeFilter(), LEA_B)

    # Reads first (B has nothing yet), then B's writes, which must leave A's rows as they were.
    return {
        "HistoryStore.last_submitted": last_submitted, "HistoryStore.history_base": history_base,
        "HistoryStore.release_submission": release_submission, "HistoryStore.runs": runs,
        "HistoryStore.records_for_student": records_for_student, "CountStore.previous": previous,
        "AfterschoolStore.find_import": find_import, "AfterschoolStore.current_sessions": current_sessions,
        "AfterschoolStore.year_import": year_import, "AfterschoolStore.staged": staged,
        "AfterschoolStore.written_days": written_days, "AfterschoolStore.last_import": last_import,
        "AfterschoolStore.audit_rows": audit_rows, "AfterschoolStore.writeback_runs": writeback_runs,
        "ods.seed_history": seed_history, "ods.compare_for_run": compare_for_run,
        "HistoryStore.claim_submission": claim_submission, "HistoryStore.save_run": save_run,
        "CountStore.save": save, "AfterschoolStore.stage": stage,
    }


def test_every_public_store_method_takes_an_lea_or_says_why_not():
    exercised = set(_CALLED)
    methods = public_methods()
    assert methods == exercised | set(LEA_FREE), {
        "neither called with LEA B nor LEA-free": sorted(methods - exercised - set(LEA_FREE)),
        "listed but gone": sorted((exercised | set(LEA_FREE)) - methods)}
    assert not exercised & set(LEA_FREE)
    no_lea = [m for m in exercised if "lea" not in inspect.signature(_callable(m)).parameters]
    assert not no_lea, f"scoped per LEA but without an lea parameter: {no_lea}"


_CALLED = (
    "HistoryStore.last_submitted", "HistoryStore.history_base", "HistoryStore.release_submission",
    "HistoryStore.runs", "HistoryStore.records_for_student", "CountStore.previous", "AfterschoolStore.find_import",
    "AfterschoolStore.current_sessions", "AfterschoolStore.year_import", "AfterschoolStore.staged",
    "AfterschoolStore.written_days", "AfterschoolStore.last_import", "AfterschoolStore.audit_rows",
    "AfterschoolStore.writeback_runs", "ods.seed_history", "ods.compare_for_run", "HistoryStore.claim_submission",
    "HistoryStore.save_run", "CountStore.save", "AfterschoolStore.stage",
)


def test_lea_b_sees_nothing_of_lea_a_and_changes_none_of_its_rows(store_engine, tmp_path):
    a = fill_lea_a(store_engine, tmp_path)
    before, a_before = dump(store_engine), a_view(store_engine)
    assert len(a_before["last"]) == 2 and a_before["counts"] == {"students": 1500, "programs": 900}
    steps = calls(store_engine, tmp_path, a)
    assert tuple(steps) == _CALLED
    for name, step in steps.items():
        try:
            step()
        except AssertionError as exc:
            raise AssertionError(f"{name} with LEA {LEA_B}: {exc}") from exc
    after = dump(store_engine)
    for table, rows in before.items():
        assert rows <= after[table], f"{table}: rows of LEA A changed or gone"
    assert a_view(store_engine) == a_before
    # A's lease is still A's: B's own claim and save did not take or release it.
    assert HistoryStore(store_engine).release_submission("SPRG", LEA_A, YEAR, "a3") is True
