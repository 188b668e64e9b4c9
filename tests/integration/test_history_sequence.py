"""A school year of SIS changes through the real pipeline stages, on SQLite and PostgreSQL stores.

Each run is extract -> gate -> diff -> publish -> save_history on a hand-made SIS (tests/unit/
sis_fixtures.Sis). The expected transaction types per run are worked out by hand from the seed's
report modes and the contract (§4: operational keys school, SSID, program, start date, service
code; every other field is updatable; a changed key is a D of the old key and an add of the new).
Also: the mass-delete guard at 21% / 20% / allow_mass_delete, and migrating a store created at
the first schema revision. Every student here stays enrolled, so each run that deletes a record
is first blocked by the enrolled-delete guard (calpads.history.guard.check_enrolled_deletes) and
goes out with allow_enrolled_deletes.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.history import schema
from calpads.history.guard import EnrolledDeleteBlocked, MassDeleteBlocked, check_deletes, parse_share
from calpads.history.store import HistoryStore
from calpads.run_scope import RunScope
from tests.conftest import require_postgres  # noqa: F401
from tests.integration.test_history_upgrade import old_records_table
from tests.unit.sis_fixtures import LEA, Sis

YEAR = "2025-2026"
A, B = "7654321", "7654322"          # CDS codes of schools 100 and 200
OLD = datetime(2025, 10, 1, tzinfo=UTC)


# store_engine: tests/conftest.py (SQLite and PostgreSQL)


def run(tmp_path: Path, sis: sa.Engine, store: sa.Engine, run_id: str, **params) -> Path:
    """One run of the real stages; returns its publish folder."""
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, "save_history": True, **params},
                                 today=date(2026, 5, 1))
    ctx = pipeline.RunContext("SPRG", "calpads_sprg", run_id, scope, tmp_path / "work" / run_id, tmp_path / "pub")
    pipeline.extract(ctx, sis)
    pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)
    pipeline.diff(ctx, store)
    pipeline.publish(ctx)
    pipeline.save_history(ctx, store)
    return Path(str(ctx.run_folder))


def run_after_block(tmp_path: Path, sis: sa.Engine, store: sa.Engine, run_id: str, **params) -> Path:
    """A run whose deletes are of enrolled students: blocked (nothing published), then run with
    allow_enrolled_deletes."""
    with pytest.raises(EnrolledDeleteBlocked):
        run(tmp_path, sis, store, run_id, **params)
    assert not list((tmp_path / "pub" / YEAR / "SPRG" / run_id).glob("*.txt"))
    return run(tmp_path, sis, store, run_id, allow_enrolled_deletes=True, **params)


def lines(folder: Path, suffix: str = "") -> list[list[str]]:
    path = folder / f"SPRG_{LEA}_{YEAR}{suffix}.txt"
    return [ln.split("^") for ln in path.read_text().splitlines()] if path.exists() else []


def sent(folder: Path) -> list[tuple[str, str]]:
    """(transaction type, Local Record ID) of the full file, in file order."""
    return [(r[1], r[2]) for r in lines(folder)]


def history_runs(store: sa.Engine) -> list[tuple]:
    df = HistoryStore(store).runs("SPRG")
    return [(r.run_id, r.record_count, r.add_update_count, r.delete_count) for r in df.itertuples()]


def programs_table(sis: Sis) -> sa.Table:
    return sis.table("S_CA_STU_CALPADSPROGRAMS_C")


def update_program(sis: Sis, program_id: int, **values) -> None:
    t = programs_table(sis)
    by_lower = {c.name.lower(): c.name for c in t.columns}
    with sis.engine.begin() as c:
        c.execute(t.update().where(t.c[by_lower["id"]] == program_id)
                  .values({by_lower[k.lower()]: v for k, v in values.items()}))


def delete_programs(sis: Sis, *program_ids: int) -> None:
    t = programs_table(sis)
    id_col = next(c for c in t.columns if c.name.lower() == "id")
    with sis.engine.begin() as c:
        c.execute(t.delete().where(id_col.in_(program_ids)))


def make_sis(path: Path) -> Sis:
    sis = Sis(sa.create_engine(f"sqlite:///{path}"))
    sis.add_school(100, A)
    sis.add_school(200, B)
    # Local Record ID = "<STUDENTS.ID>.<program ID>"; Local Student ID = 100000 + id.
    for sid, first, last in [(1, "Ada", "Adams"), (2, "Ben", "Baker"), (3, "Cy", "Clark"), (4, "Dee", "Davis"),
                             (5, "Eve", "Evans"), (7, "Gus", "Green")]:
        sis.add_student(sid, first=first, last=last)
    # Fay Ford: current enrollment at school 200, and an enrollment at school 100 for the whole year
    # (EXITDATE 2026-06-05 = the day after her last day, 2026-06-04, inside the report range).
    sis.add_student(6, first="Fay", last="Ford", school=200)
    sis.add_reenrollment(6, 100, "2025-08-13", "2026-06-05")
    sis.add_program(1, 100, "101", start="2025-08-20", program_id=501)
    sis.add_program(2, 100, "108", start="2025-09-02", program_id=502)
    sis.add_program(3, 100, "162", start="2025-09-02", program_id=503)
    sis.add_program(4, 100, "174", start="2025-09-15", program_id=504)
    sis.add_program(5, 100, "180", start="2025-10-01", program_id=505)
    sis.add_program(6, 100, "190", start="2025-10-01", program_id=506)
    sis.add_program(7, 100, "144", start="2025-08-20", program_id=507, disability="290", dsea=LEA)
    return sis


def test_a_year_of_changes_sends_the_right_transactions(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    eng = sis.engine

    # r1, first submission (eoy2): every eoy2 record, blank type; 144 is not in eoy2. Sorted by last name.
    f1 = run(tmp_path, eng, store_engine, "r1")
    assert sent(f1) == [("", "1.501"), ("", "2.502"), ("", "3.503"), ("", "4.504"), ("", "5.505"), ("", "6.506")]
    ford = lines(f1)[5]
    assert (ford[4], ford[15]) == (A, "20260604")       # end date = last day of the enrollment at school 100
    assert lines(f1, "_D") == []

    # r2, add a program: Ben gets a 101 -> one add.
    sis.add_program(2, 100, "101", start="2025-11-03", program_id=508)
    f2 = run(tmp_path, eng, store_engine, "r2")
    assert sent(f2) == [("", "2.508")]

    # r3, change an end date (updatable field): Ada's 101 ends 2026-01-15 -> one update (blank type).
    update_program(sis, 501, PROGRAMENDDATE=date(2026, 1, 15))
    f3 = run(tmp_path, eng, store_engine, "r3")
    assert [(r[1], r[2], r[15]) for r in lines(f3)] == [("", "1.501", "20260115")]

    # r4, correct a start date (operational key): Cy's 162 started 09-03, not 09-02 -> D of the old key
    # (as last submitted) + add of the new. Sorted by start date within the student: 0902 (D) before 0903.
    update_program(sis, 503, PROGRAMSTARTDATE=date(2025, 9, 3))
    f4 = run_after_block(tmp_path, eng, store_engine, "r4")
    assert [(r[1], r[2], r[14]) for r in lines(f4)] == [("D", "3.503", "20250902"), ("", "3.503", "20250903")]
    assert [(r[1], r[14]) for r in lines(f4, "_D")] == [("D", "20250902")]
    assert [(r[1], r[14]) for r in lines(f4, "_AU")] == [("", "20250903")]

    # r5, delete a program: Dee's 174 -> one D repeating its submitted fields (1 of 7 in scope: 14%).
    delete_programs(sis, 504)
    f5 = run_after_block(tmp_path, eng, store_engine, "r5")
    assert [(r[1], r[2], r[12], r[14]) for r in lines(f5)] == [("D", "4.504", "174", "20250915")]

    # r6, change school (operational key): Fay's 190 moves to school 200 -> D at school 100 (with the end date
    # as submitted) + add at school 200 (no end date: her enrollment there is open). School A sorts first.
    update_program(sis, 506, SCHOOLID=200)
    f6 = run_after_block(tmp_path, eng, store_engine, "r6")
    assert [(r[1], r[2], r[4], r[15]) for r in lines(f6)] == [("D", "6.506", A, "20260604"), ("", "6.506", B, "")]

    # r7, custom program set [144]: Gus's 144 is new to the history -> add. The eoy2 history is outside this
    # run's program set: nothing of it is deleted.
    f7 = run(tmp_path, eng, store_engine, "r7", submission="custom", programs=["144"])
    assert [(r[1], r[2], r[12], r[20]) for r in lines(f7)] == [("", "7.507", "144", "290")]

    # r8, change primary disability (updatable) -> update, blank type, no D.
    update_program(sis, 507, PRMARYDISABILITYCODE="320")
    f8 = run(tmp_path, eng, store_engine, "r8", submission="custom", programs=["144"])
    assert [(r[1], r[2], r[20]) for r in lines(f8)] == [("", "7.507", "320")]

    expected_history = [("r1", 6, 6, 0), ("r2", 1, 1, 0), ("r3", 1, 1, 0), ("r4", 2, 1, 1), ("r5", 1, 0, 1),
                        ("r6", 2, 1, 1), ("r7", 1, 1, 0), ("r8", 1, 1, 0)]
    assert history_runs(store_engine) == expected_history

    # Retry / clear of r6 and r8 after later runs were saved: byte-identical files and manifests (the diff
    # reads the history as it was before the run), nothing saved twice.
    for run_id, folder, params in (("r6", f6, {"allow_enrolled_deletes": True}),
                                   ("r8", f8, {"submission": "custom", "programs": ["144"]})):
        before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        assert run(tmp_path, eng, store_engine, run_id, **params) == folder
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert history_runs(store_engine) == expected_history

    # r9, nothing changed since: eoy2 and 144 runs send nothing.
    assert sent(run(tmp_path, eng, store_engine, "r9")) == []
    assert sent(run(tmp_path, eng, store_engine, "r10", submission="custom", programs=["144"])) == []

    # What CALPADS holds now, per the history: the latest row per key, deleted keys left out.
    last = HistoryStore(store_engine).last_submitted("SPRG", LEA, YEAR, with_fields=True)
    held = sorted(zip(last["local_record_id"], last["school_of_attendance"], last["membership_start_date"],
                      last["membership_end_date"].fillna(""), last["primary_disability_code"].fillna(""),
                      strict=True))
    assert held == [("1.501", A, "20250820", "20260115", ""), ("2.502", A, "20250902", "", ""),
                    ("2.508", A, "20251103", "", ""), ("3.503", A, "20250903", "", ""),
                    ("5.505", A, "20251001", "", ""), ("6.506", B, "20251001", "", ""),
                    ("7.507", A, "20250820", "", "320")]


# ------------------------------------------------------------------------------------------ guard
def hundred_records_sis(path: Path) -> Sis:
    """20 students x 5 eoy2 programs = 100 records; program id = 1000 + 10 * student + k."""
    sis = Sis(sa.create_engine(f"sqlite:///{path}"))
    sis.add_school(100, A)
    for s in range(1, 21):
        sis.add_student(s, first=f"F{s:02d}", last=f"L{s:02d}")
        for k, code in enumerate(("101", "108", "162", "174", "180")):
            sis.add_program(s, 100, code, start="2025-09-02", program_id=1000 + 10 * s + k)
    return sis


def test_a_submitted_record_held_back_later_is_never_sent_as_a_delete(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    assert ("", "5.505") in sent(run(tmp_path, sis.engine, store_engine, "r1"))
    # Eve's 180 gets a CPA ID (only program 113 may carry one): held back by the gate, but still in the SIS.
    update_program(sis, 505, PARTNERSHIPACADEMYID="12345")
    f2 = run(tmp_path, sis.engine, store_engine, "r2")
    assert sent(f2) == []                                      # no D of 5.505: nothing to send at all
    held = (f2 / "report" / "findings.csv").read_text()
    assert "5.505" in held and "SPRG-CPA-ONLY-113" in held
    # Corrected: the record equals what was submitted in r1, so nothing is sent either.
    update_program(sis, 505, PARTNERSHIPACADEMYID=None)
    assert sent(run(tmp_path, sis.engine, store_engine, "r3")) == []


def test_the_guard_blocks_21_percent_deletes_passes_20_percent_or_with_allow_mass_delete(tmp_path, store_engine):
    # The students stay enrolled, so every run that deletes also needs allow_enrolled_deletes (the mass-delete
    # guard is checked first: its message is the one the 21% run shows).
    sis = hundred_records_sis(tmp_path / "sis.db")
    f1 = run(tmp_path, sis.engine, store_engine, "g1")
    assert len(lines(f1)) == 100

    # A broken pull: 21 of the 100 submitted records vanish -> blocked, nothing published or saved.
    gone = [1000 + 10 * s + k for s in range(1, 5) for k in range(5)] + [1050]       # 20 + 1
    delete_programs(sis, *gone)
    with pytest.raises(MassDeleteBlocked) as info:
        run(tmp_path, sis.engine, store_engine, "g2")
    message = str(info.value)
    assert "delete 21 of the 100 previously submitted records" in message
    assert "date range" in message and "SIS pull" in message and "allow_mass_delete: true" in message
    for student_data in ("100001", "1000000001", "F01", "L01", "1.1010"):
        assert student_data not in message
    g2 = tmp_path / "pub" / YEAR / "SPRG" / "g2"
    assert not list(g2.glob("*.txt")) and not (g2 / "manifest.json").exists()
    assert not (tmp_path / "work" / "g2" / pipeline.DIFFED).exists()
    assert history_runs(store_engine) == [("g1", 100, 100, 0)]

    # The same 21 deletes with allow_mass_delete (not saved: the coordinator only looks).
    f2b = run(tmp_path, sis.engine, store_engine, "g2_allowed", allow_mass_delete=True, save_history=False,
              allow_enrolled_deletes=True)
    assert [t for t, _ in sent(f2b)] == ["D"] * 21
    manifest = json.loads((f2b / "manifest.json").read_text())
    assert manifest["params"]["allow_mass_delete"] is True
    assert manifest["counts"]["diff"]["delete_guard"] == {
        "deletes": 21, "previously_submitted_in_scope": 100, "max_delete_share": 0.2, "over_share": True,
        "allow_mass_delete": True}

    # One record comes back: 20 of 100 = 20%, not more than 20% -> passes, and is saved.
    sis.add_program(5, 100, "101", start="2025-09-02", program_id=1050)
    f3 = run(tmp_path, sis.engine, store_engine, "g2", allow_enrolled_deletes=True)
    assert [t for t, _ in sent(f3)] == ["D"] * 20
    assert history_runs(store_engine) == [("g1", 100, 100, 0), ("g2", 20, 0, 20)]

    # A stricter configured share (the Airflow config value is passed in by the DAG): 1 of 80 is over 1%.
    delete_programs(sis, 1050)
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, "allow_enrolled_deletes": True},
                                 today=date(2026, 5, 1))
    ctx = pipeline.RunContext("SPRG", "calpads_sprg", "g3", scope, tmp_path / "work" / "g3", tmp_path / "pub")
    pipeline.extract(ctx, sis.engine)
    pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)
    with pytest.raises(MassDeleteBlocked, match="delete 1 of the 80 "):
        pipeline.diff(ctx, store_engine, max_delete_share=parse_share("1%"))
    assert pipeline.diff(ctx, store_engine, max_delete_share=0.0125)["deleted"] == 1


def test_the_guard_function_compares_exactly():
    assert check_deletes(20, 100, record_type="SPRG").over is False
    with pytest.raises(MassDeleteBlocked):
        check_deletes(21, 100, record_type="SPRG")
    assert check_deletes(21, 100, record_type="SPRG", allow_mass_delete=True).over is True
    assert check_deletes(3, 10, record_type="SPRG", max_share=0.3).over is False     # 0.3 x 10 is 3, exactly
    assert check_deletes(0, 0, record_type="SPRG").over is False                     # nothing submitted yet
    assert check_deletes(5, 5, record_type="SPRG", max_share=1).over is False
    assert parse_share("20%") == 0.2 and parse_share(" 0.05 ") == 0.05
    for bad in ("abc", "1.5", "-0.1"):
        with pytest.raises(ValueError):
            parse_share(bad)


# ------------------------------------------------------------------------------------------ migrations
def test_a_store_created_at_the_first_revision_upgrades_and_keeps_its_rows(tmp_path, store_engine):
    from alembic import command

    store = HistoryStore(store_engine)
    with store_engine.begin() as conn:
        command.upgrade(store._alembic_config(conn), "0001")
    assert store.current_revision() == "0001"
    fields = {"record_type": "SPRG", "local_record_id": "1.501", "reporting_lea": LEA, "school_of_attendance": A,
              "academic_year_id": YEAR, "ssid": "1000000001", "local_student_id": "100001",
              "program_code": "101", "membership_code": "3", "membership_start_date": "20250820"}
    op_key = "\x1f".join([A, "1000000001", "101", "20250820", ""])
    with store_engine.begin() as conn:     # a row as the first release wrote it
        run_pk = conn.execute(schema.runs.insert(), dict(
            record_type="SPRG", reporting_lea=LEA, academic_year=YEAR, run_id="old_run", params="{}",
            record_count=1, add_update_count=1, delete_count=0, saved_at=OLD)).inserted_primary_key[0]
        conn.execute(sa.insert(old_records_table()).values(
            run_pk=run_pk, run_id="old_run", record_type="SPRG", reporting_lea=LEA, academic_year=YEAR,
            op_key=op_key, key_values="{}", updatable_hash="0" * 64, transaction_type=None,
            local_student_id="100001", ssid="1000000001", fields=json.dumps(fields), saved_at=OLD))
    store.migrate()
    assert store.current_revision() == store.head_revision()
    assert history_runs(store_engine) == [("old_run", 1, 1, 0)]
    last = store.last_submitted("SPRG", LEA, YEAR)
    assert last["local_record_id"].tolist() == ["1.501"] and last["hist_run_id"].tolist() == ["old_run"]
    # A run after the upgrade diffs against the old row: the hash differs (a made-up one), so it is an
    # update, and a missing key of the old row would be a delete. Here: Ada's record again -> update.
    sis = Sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"))
    sis.add_school(100, A)
    sis.add_student(1, first="Ada", last="Adams")
    sis.add_program(1, 100, "101", start="2025-08-20", program_id=501)
    folder = run(tmp_path, sis.engine, store_engine, "new_run")
    assert sent(folder) == [("", "1.501")]
    assert history_runs(store_engine) == [("old_run", 1, 1, 0), ("new_run", 1, 1, 0)]
