"""The publishing process SIGKILLed at several points: no extract file is ever visible without the
manifest listing it, what the kill left is owner/group-only (even with umask 000), and the next run
removes it and says so in its summary email; the killed run, retried, publishes the same bytes and
saves its history once.

The kill is deterministic: the child process (a real Python process running the real pipeline stage)
patches one operating-system call (``os.fdopen``'s file write, ``os.open``, ``os.rename``,
``shutil.rmtree``) to SIGKILL itself at that point, the way a killed worker stops: no exception
handler, no ``finally`` runs.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.alerts.messages import needs_summary_email, summary_email
from calpads.history.store import HistoryStore
from calpads.publish import target
from tests.integration.reliability import assert_no_stray_files, context, history_snapshot, make_sis, run_all

ROOT = Path(__file__).resolve().parents[2]
RUN_A, RUN_B = "manual__2026-04-01T10:00:00+00:00", "scheduled__2026-04-02T09:00:00+00:00"
STUDENTS = 60

CHILD = r"""
import os, shutil, signal, sys
from pathlib import Path
from calpads import pipeline
from tests.integration.reliability import context

point, tmp, run_id, stage = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
os.umask(0)   # the most permissive umask: modes must still come out 0640 / 0750 / 0700

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def path_of(fd):
    return os.readlink(f"/proc/self/fd/{fd}")

class Dying:
    # A file that writes half of its first chunk for real, then the process is killed.
    def __init__(self, fh):
        self.fh = fh
    def write(self, data):
        self.fh.write(data[: max(1, len(data) // 2)])
        self.fh.flush()
        die()
    def __getattr__(self, name):
        return getattr(self.fh, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.fh.__exit__(*exc)

real_fdopen, real_open, real_rename, real_rmtree = os.fdopen, os.open, os.rename, shutil.rmtree

def fdopen(fd, *args, **kwargs):
    fh = real_fdopen(fd, *args, **kwargs)
    p = path_of(fd)
    if ".incomplete/" in p and ((point == "report" and "/report/" in p) or (point == "extract" and "_AU.txt" in p)):
        return Dying(fh)
    return fh

def open_(path, *args, **kwargs):
    if point == "manifest" and str(path).endswith("manifest.json.partial"):
        die()
    return real_open(path, *args, **kwargs)

def rename(src, dst, *args, **kwargs):
    if point == "rename" and str(dst).endswith(".replaced"):     # the first rename: the gate's folder aside
        die()
    if point == "swap" and str(src).endswith(".incomplete") and os.path.exists(
            str(src)[: -len(".incomplete")] + ".replaced"):          # the second: the new folder into place
        die()
    return real_rename(src, dst, *args, **kwargs)

def rmtree(path, *args, **kwargs):
    if point == "cleanup" and str(path).endswith(".replaced"):
        die()
    return real_rmtree(path, *args, **kwargs)

os.fdopen, os.open, os.rename, shutil.rmtree = fdopen, open_, rename, rmtree
ctx = context(tmp, run_id, tmp / "pub", save_history=True)
if stage == "gate":
    pipeline.gate(ctx, run_date=ctx.scope.today, error_ceiling=1.0)
else:
    pipeline.publish(ctx)
raise SystemExit("the kill point was never reached")
"""

# point -> (stage the child runs, whether the run was published once before (a cleared publish re-runs),
#           hidden folders the kill leaves, whether the run folder is visible afterwards)
POINTS = {
    "report": ("gate", False, {".incomplete"}, False),       # the gate writing its report
    "extract": ("publish", False, {".incomplete"}, True),    # the _AU file half written, the full file done
    "manifest": ("publish", False, {".incomplete"}, True),   # every extract file written, no manifest yet
    "rename": ("publish", False, {".incomplete"}, True),     # everything written, nothing renamed yet
    "swap": ("publish", True, {".incomplete", ".replaced"}, False),   # old folder moved aside, new not in
    "cleanup": ("publish", True, {".replaced"}, True),      # new folder in place, old one not yet removed
}


def _kill_at(point: str, tmp_path: Path, run_id: str) -> None:
    stage = POINTS[point][0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", CHILD, point, str(tmp_path), run_id, stage], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _modes(folder: Path) -> dict[str, str]:
    """Modes that let others in: any file or folder under folder that is not owner/group-only."""
    out = {}
    for p in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        allowed = (0o750, 0o700) if p.is_dir() else (0o640, 0o600)
        if mode not in allowed:
            out[str(p)] = oct(mode)
    return out


@pytest.mark.parametrize("point", list(POINTS))
def test_a_publish_killed_at_any_point_leaves_no_visible_extract_and_the_next_run_sweeps_and_reports(
        tmp_path, point):
    stage, published_before, hidden, visible_after = POINTS[point]
    sis = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"), students=STUDENTS)
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    pub = tmp_path / "pub"
    a = context(tmp_path, RUN_A, pub, save_history=True)
    pipeline.extract(a, sis)
    if stage == "publish":
        pipeline.gate(a, run_date=a.scope.today, error_ceiling=1.0)
        pipeline.diff(a, store)
        if published_before:
            pipeline.publish(a)

    _kill_at(point, tmp_path, RUN_A)

    # No extract file visible without its manifest; what the kill left is hidden and private.
    assert_no_stray_files(pub, hidden_allowed=True)
    parent = Path(str(a.run_folder)).parent
    left = {p.name for p in parent.iterdir() if p.name.startswith(".") and p.is_dir()}
    safe_a = a.run_folder.name
    assert left == {f".{safe_a}{suffix}" for suffix in hidden}, left
    for name in left:
        assert not _modes(parent / name), _modes(parent / name)
    folder = Path(str(a.run_folder))
    assert folder.exists() == visible_after
    if folder.exists():
        txt = {p.name for p in folder.glob("*.txt")}
        assert (folder / "manifest.json").exists() == bool(txt)   # report only, or the complete folder
    assert history_snapshot(store) == ([], [])

    # The next run (a nightly run: no save) removes it and names it in its summary email.
    b = context(tmp_path, RUN_B, pub)
    run_all(b, sis, store)
    swept = b.state()["swept"]
    assert sorted(Path(s["folder"]).name for s in swept) == sorted(left)
    assert all(s["left_by"] for s in swept)
    assert not [p for p in parent.iterdir() if p.name.startswith(".") and p.is_dir()]
    assert_no_stray_files(pub)
    assert needs_summary_email({}, None, swept=swept)
    subject, body = summary_email(dag_id="calpads_sprg", run_id=RUN_B, validation=b.state()["validation"],
                                  published=b.state()["published"], report_link=None, swept=swept)
    assert "interrupted" in subject and "interrupted publication" in body
    for name in left:
        assert name in body

    # The killed run, retried (Airflow's retry or a clear): the same bytes as the undisturbed run B
    # (same SIS, same empty history), saved once.
    if stage == "gate":
        pipeline.gate(a, run_date=a.scope.today, error_ceiling=1.0)
        pipeline.diff(a, store)
    for _ in range(2):
        out = pipeline.publish(a)
        assert pipeline.save_history(a, store)["saved"] in (STUDENTS, 0)
    assert out["records"] == STUDENTS
    assert_no_stray_files(pub)
    b_folder = Path(str(b.run_folder))
    names = sorted(p.name for p in folder.glob("*.txt"))
    assert names and names == sorted(p.name for p in b_folder.glob("*.txt"))
    for name in names:
        assert (folder / name).read_bytes() == (b_folder / name).read_bytes(), name
    runs = HistoryStore(store).runs("SPRG")
    assert runs["run_id"].tolist() == [RUN_A] and runs["record_count"].tolist() == [STUDENTS]


def test_the_retry_of_the_killed_run_sweeps_its_own_leftovers_and_a_live_publication_is_left_alone(tmp_path):
    """The retry of the killed run removes its own earlier attempt's folder (and reports it); a temporary
    folder whose publishing process is alive (it holds the folder's lock) is never removed."""
    import fcntl

    sis = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"), students=STUDENTS)
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    pub = tmp_path / "pub"
    a = context(tmp_path, RUN_A, pub, save_history=True)
    pipeline.extract(a, sis)
    pipeline.gate(a, run_date=a.scope.today, error_ceiling=1.0)
    pipeline.diff(a, store)
    _kill_at("manifest", tmp_path, RUN_A)
    parent = Path(str(a.run_folder)).parent

    live = parent / ".manual__other.incomplete"   # another run's publication in progress: it holds its lock
    live.mkdir(mode=0o700)
    (live / "SPRG_x.txt").write_text("being written")
    fd = os.open(live / target.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        out = pipeline.publish(a)
        swept = a.state()["swept"]
        assert [Path(s["folder"]).name for s in swept] == [f".{a.run_folder.name}.incomplete"]
        assert "SPRG_1234567_2025-2026.txt" in swept[0]["files"] and "manifest.json" not in swept[0]["files"]
        assert live.is_dir() and (live / "SPRG_x.txt").exists()
    finally:
        os.close(fd)
    assert out["records"] == STUDENTS and pipeline.save_history(a, store) == {"saved": STUDENTS}
    # Once its process is gone (lock released), the next publication removes it.
    b = context(tmp_path, RUN_B, pub)
    run_all(b, sis, store)
    assert [Path(s["folder"]).name for s in b.state()["swept"]] == [live.name]
    assert_no_stray_files(pub)
