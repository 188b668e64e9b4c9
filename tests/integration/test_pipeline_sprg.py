"""The whole SPRG chain in-process on a hand-made SIS, across runs, on SQLite and PostgreSQL stores.

Expected files are worked out by hand from the seed and the contract (not copied
from the program's output): see the comments at each step.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.run_scope import RunScope
from calpads.sources.sis_schema import create_sis_schema
from tests.conftest import require_postgres  # noqa: F401  (used through the store fixture)

LEA = "1234567"
SCHOOL = "7654321"


def make_sis(path: Path) -> sa.Engine:
    eng = sa.create_engine(f"sqlite:///{path}")
    create_sis_schema(eng)
    with eng.begin() as c:
        c.exec_driver_sql("INSERT INTO PREFS VALUES (1, 'districtnumber', ?, 0)", (LEA,))
        c.exec_driver_sql("INSERT INTO SCHOOLS VALUES (1, 100, 'Elm Elementary', ?, 'North', 0)", (SCHOOL,))
        c.exec_driver_sql("INSERT INTO TERMS VALUES (1, 100, 35, '2025-08-13', '2026-06-05', 1)")
        # Student 1: Ann Lee; Student 2: Bob Diaz (sorts first: Diaz < Lee)
        c.exec_driver_sql("INSERT INTO STUDENTS VALUES (1, 11, '1001', '1000000001', 'Ann', 'Lee', '2015-03-04', 'F',"
                          " 100, 4, '2025-08-13', NULL, 0, 0, NULL, NULL, NULL, NULL, NULL)")
        c.exec_driver_sql("INSERT INTO STUDENTS VALUES (2, 12, '1002', '1000000002', 'Bob', 'Diaz', '2014-05-06', 'M',"
                          " 100, 5, '2025-08-13', NULL, 0, 0, NULL, NULL, NULL, NULL, NULL)")
        c.exec_driver_sql("INSERT INTO S_CA_STU_CALPADSPROGRAMS_C (ID, STUDENTSDCID, SCHOOLID, PROGRAMCODE, "
                          "PROGRAMMEMBERSHIPCODE, PROGRAMSTARTDATE) VALUES (21, 11, 100, '101', '3', '2025-09-02')")
        c.exec_driver_sql("INSERT INTO S_CA_STU_CALPADSPROGRAMS_C (ID, STUDENTSDCID, SCHOOLID, PROGRAMCODE, "
                          "PROGRAMMEMBERSHIPCODE, PROGRAMSTARTDATE) VALUES (22, 11, 100, '122', '3', '2025-08-20')")
        c.exec_driver_sql("INSERT INTO S_CA_CALPADS_STUDENTSERVICES_C VALUES (1, 11, 100, '08', '2025-09-10')")
        c.exec_driver_sql("INSERT INTO S_CA_CALPADS_STUDENTSERVICES_C VALUES (2, 11, 100, '09', '2025-10-10')")
        c.exec_driver_sql("INSERT INTO S_CA_STU_CALPADSPROGRAMS_C (ID, STUDENTSDCID, SCHOOLID, PROGRAMCODE, "
                          "PROGRAMMEMBERSHIPCODE, PROGRAMSTARTDATE) VALUES (23, 12, 100, '108', '3', '2025-10-01')")
        # Held back: a 113 (CPA) without a CPA ID breaks SPRG-CPA-113
        c.exec_driver_sql("INSERT INTO S_CA_STU_CALPADSPROGRAMS_C (ID, STUDENTSDCID, SCHOOLID, PROGRAMCODE, "
                          "PROGRAMMEMBERSHIPCODE, PROGRAMSTARTDATE) VALUES (24, 12, 100, '113', '3', '2025-10-01')")
    return eng


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request, tmp_path):
    if request.param == "sqlite":
        yield sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    else:
        url = request.getfixturevalue("pg_database")
        eng = sa.create_engine(url)
        yield eng
        eng.dispose()


def run(tmp_path: Path, sis: sa.Engine, store: sa.Engine, run_id: str, **params) -> tuple[dict, Path]:
    scope = RunScope.from_params("SPRG", {"academic_year": "2025-2026", **params}, today=date(2026, 5, 1))
    safe = run_id.replace(":", "_").replace("+", "_")
    ctx = pipeline.RunContext("SPRG", "calpads_sprg", run_id, scope, tmp_path / "work" / safe, tmp_path / "pub")
    pipeline.extract(ctx, sis)
    gated = pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)
    pipeline.diff(ctx, store)
    published = pipeline.publish(ctx)
    pipeline.save_history(ctx, store)
    return {"gate": gated, "published": published}, Path(str(ctx.run_folder))


def lines(folder: Path, suffix: str) -> list[list[str]]:
    path = folder / f"SPRG_{LEA}_2025-2026{suffix}.txt"
    return [ln.split("^") for ln in path.read_text().splitlines()] if path.exists() else []


def test_two_submissions_with_changes_between(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")

    # Run 1: first submission. Extracted: 1.21 (101), 1.22.08 and 1.22.09 (122 per service code), 2.23 (108),
    # 2.24 (113, held back: no CPA ID). Sort: Diaz before Lee; within Lee by start date: 122 (0820) before 101 (0902).
    out, folder = run(tmp_path, sis, store_engine, "manual__run1", save_history=True)
    assert out["gate"]["records_held_back"] == 1
    full = lines(folder, "")
    assert [r[2] for r in full] == ["2.23", "1.22.08", "1.22.09", "1.21"]
    assert all(len(r) == 25 and r[1] == "" for r in full)
    # Ann has two 122 records: the second goes to _AU2
    assert [r[2] for r in lines(folder, "_AU")] == ["2.23", "1.22.08", "1.21"]
    assert [r[2] for r in lines(folder, "_AU2")] == ["1.22.09"]
    assert lines(folder, "_D") == []
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"]["split_files_add_up"] is True
    assert {f["name"]: f["records"] for f in manifest["files"]} == {
        f"SPRG_{LEA}_2025-2026.txt": 4, f"SPRG_{LEA}_2025-2026_AU.txt": 3, f"SPRG_{LEA}_2025-2026_AU2.txt": 1}
    report = (folder / "report" / "index.html").read_text()
    assert "SPRG-CPA-113" in report and "2.24" in report
    assert f"School {SCHOOL} Elm Elementary:" in report   # the held-back worklist names the school as the SIS does
    for p in folder.rglob("*"):
        if p.is_file():
            assert stat.S_IMODE(os.stat(p).st_mode) & 0o007 == 0, p

    # Changes in the SIS: Ann's 101 gets an end date (update of an updatable field), Bob's 108 is deleted,
    # Bob gets a 191 (new key).
    with sis.begin() as c:
        c.exec_driver_sql("UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMENDDATE = '2026-01-15' WHERE ID = 21")
        c.exec_driver_sql("DELETE FROM S_CA_STU_CALPADSPROGRAMS_C WHERE ID = 23")
        c.exec_driver_sql("INSERT INTO S_CA_STU_CALPADSPROGRAMS_C (ID, STUDENTSDCID, SCHOOLID, PROGRAMCODE, "
                          "PROGRAMMEMBERSHIPCODE, PROGRAMSTARTDATE, DWELLINGTYPE, UNACCOMPANIEDYOUTH, RUNAWAYYOUTH) "
                          "VALUES (25, 12, 100, '191', '3', '2025-11-03', '110', 'N', 'N')")

    # Run 2: submission mode publishes only the changed and new records (blank type) and a D for the 108,
    # repeating the 108's fields as last submitted. The unchanged 122 records are not sent again.
    # 1 delete of 4 submitted records is 25%, over the mass-delete guard's 20%: the run allows it. Bob is still
    # enrolled, so the delete of his 108 also needs allow_enrolled_deletes (calpads.history.guard).
    out2, folder2 = run(tmp_path, sis, store_engine, "manual__run2", save_history=True, allow_mass_delete=True,
                        allow_enrolled_deletes=True)
    au = lines(folder2, "_AU")
    assert [(r[1], r[2]) for r in au] == [("", "2.25"), ("", "1.21")]
    assert au[1][15] == "20260115"
    d = lines(folder2, "_D")
    assert [(r[1], r[2], r[12], r[14]) for r in d] == [("D", "2.23", "108", "20251001")]
    assert lines(folder2, "_AU2") == []

    # Retry of run 2 (Airflow clear): byte-identical files, history not saved twice.
    before = {p.name: p.read_bytes() for p in folder2.glob("*.txt")}
    manifest_before = (folder2 / "manifest.json").read_bytes()
    out3, folder3 = run(tmp_path, sis, store_engine, "manual__run2", save_history=True, allow_mass_delete=True,
                        allow_enrolled_deletes=True)
    assert folder3 == folder2
    assert {p.name: p.read_bytes() for p in folder2.glob("*.txt")} == before
    assert (folder2 / "manifest.json").read_bytes() == manifest_before

    # Run 3: nothing changed since run 2 was saved -> no AU and no D records.
    _, folder4 = run(tmp_path, sis, store_engine, "manual__run3")
    assert lines(folder4, "") == []


def test_replacement_mode_publishes_everything_even_after_a_submission(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    run(tmp_path, sis, store_engine, "manual__first", save_history=True)
    _, folder = run(tmp_path, sis, store_engine, "manual__replace", mode="replacement")
    assert sorted(r[2] for r in lines(folder, "")) == ["1.21", "1.22.08", "1.22.09", "2.23"]
    assert lines(folder, "_D") == []


def test_bypass_publishes_the_held_back_record_and_says_so(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    _, folder = run(tmp_path, sis, store_engine, "manual__bypass", bypass_validation=True, mode="non_submission")
    assert "2.24" in [r[2] for r in lines(folder, "")]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["bypass_validation"] is True and "BYPASSED" in manifest["WARNING"]
