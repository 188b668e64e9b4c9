"""Helpers of the reliability tests (faults, concurrency, fuzzing, privacy): a small clean SIS on
SQLite or PostgreSQL, the pipeline stages of one run, and the checks every fault test ends with.
"""

from __future__ import annotations

import json
import subprocess
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from calpads import pipeline
from calpads.run_scope import RunScope
from calpads.sources.sis_schema import create_sis_schema

LEA = "1234567"
SCHOOL = "7654321"
YEAR = "2025-2026"
TODAY = date(2026, 5, 1)


def make_sis(engine: sa.Engine, students: int = 3) -> sa.Engine:
    """A clean SIS: one school, `students` students enrolled all year, each in program 101 (participating)."""
    create_sis_schema(engine)
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO PREFS VALUES (1, 'districtnumber', :v, 0)"), {"v": LEA})
        c.execute(sa.text("INSERT INTO SCHOOLS VALUES (1, 100, 'Elm Elementary', :v, 'North', 0)"), {"v": SCHOOL})
        c.execute(sa.text("INSERT INTO TERMS VALUES (1, 100, 35, '2025-08-13', '2026-06-05', 1)"))
        c.execute(sa.text(
            "INSERT INTO STUDENTS VALUES (:id, :dcid, :num, :ssid, :first, :last, '2015-03-04', 'F', 100, 4, "
            "'2025-08-13', NULL, 0, 0, NULL, NULL, NULL, NULL, NULL)"),
            [{"id": i, "dcid": 1000 + i, "num": str(5000 + i), "ssid": str(2000000000 + i), "first": f"Ann{i:04d}",
              "last": "Lee"} for i in range(1, students + 1)])
        c.execute(sa.text(
            "INSERT INTO S_CA_STU_CALPADSPROGRAMS_C (ID, STUDENTSDCID, SCHOOLID, PROGRAMCODE, PROGRAMMEMBERSHIPCODE, "
            "PROGRAMSTARTDATE) VALUES (:id, :dcid, 100, '101', '3', '2025-09-02')"),
            [{"id": 10_000 + i, "dcid": 1000 + i} for i in range(1, students + 1)])
    return engine


def context(tmp_path: Path, run_id: str, publish_root: Path, **params: Any) -> pipeline.RunContext:
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, **params}, today=TODAY)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    return pipeline.RunContext("SPRG", "calpads_sprg", run_id, scope, tmp_path / "work" / safe, publish_root)


def run_all(ctx: pipeline.RunContext, sis: sa.Engine, store: sa.Engine) -> dict[str, Any]:
    """extract -> gate -> diff -> publish -> save history, as the DAG chains them."""
    out: dict[str, Any] = {"extract": pipeline.extract(ctx, sis)}
    out["gate"] = pipeline.gate(ctx, run_date=ctx.scope.today, error_ceiling=1.0)
    out["diff"] = pipeline.diff(ctx, store, max_delete_share=1.0)
    out["publish"] = pipeline.publish(ctx)
    out["save"] = pipeline.save_history(ctx, store)
    return out


def assert_no_stray_files(publish_root: Path, *, hidden_allowed: bool = False) -> None:
    """No temporary file anywhere; every folder with extract files has a manifest listing exactly them.
    hidden_allowed: after a kill, a hidden temporary folder (``.<run>.incomplete``) may stay until the next
    run sweeps it; it is not visible as a result, so only the visible folders are checked."""
    root = Path(publish_root)
    hidden = [p for p in root.rglob(".*") if p.is_dir()]
    assert hidden_allowed or not hidden, f"temporary folders left behind: {hidden}"

    def visible(p: Path) -> bool:
        return not any(part.startswith(".") for part in p.relative_to(root).parts[:-1])

    partial = [p for p in root.rglob("*") if p.name.endswith(".partial") and visible(p)]
    assert not partial, f"temporary files left behind: {partial}"
    for folder in {p.parent for p in root.rglob("*.txt") if visible(p)}:
        manifest = folder / "manifest.json"
        assert manifest.exists(), f"extract files without a manifest in {folder}: {sorted(folder.glob('*.txt'))}"
        listed = {f["name"] for f in json.loads(manifest.read_text())["files"]}
        assert {p.name for p in folder.glob("*.txt")} == listed, folder


def history_snapshot(store: sa.Engine) -> tuple[list[tuple], list[tuple]]:
    """The saved runs and the records they sent (the history's log, without timestamps), in save order; empty
    lists before the first save."""
    insp = sa.inspect(store)
    if not insp.has_table("calpads_history_runs"):
        return [], []
    with store.connect() as c:
        runs = c.exec_driver_sql("SELECT id, run_id, record_count FROM calpads_history_runs ORDER BY id").all()
        recs = c.exec_driver_sql("SELECT run_pk, line, op_key, transaction_type, fields "
                                 "FROM calpads_history_log ORDER BY run_pk, line").all()
    return [tuple(r) for r in runs], [tuple(r) for r in recs]


@contextmanager
def tmpfs(folder: Path, size: str = "64k"):
    """A tiny tmpfs mounted at folder (the tests run as root), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)], check=True,
                   capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


def can_mount(tmp_path: Path) -> bool:
    probe = tmp_path / "mount_probe"
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
    if ok.returncode == 0:
        subprocess.run(["umount", str(probe)], capture_output=True)
    return ok.returncode == 0


def fill(folder: Path, leave: int) -> Path:
    """Write a filler file so that about `leave` bytes stay free on folder's file system."""
    import os

    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler.bin"
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler
