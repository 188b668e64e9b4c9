"""Put a run's folder on the publish share (any ObjectStoragePath URL) whole or not at all.

Local and mounted file systems (``file://``): the run folder is built under a hidden temporary name
(``.<run id>.incomplete``) next to its final place and renamed into place as the last step; a rename
is atomic, so the visible run folder is always a finished one (the quality gate's report alone, or
the report with the extract files and their manifest). An earlier version of the folder is first
renamed aside (``.<run id>.replaced``) and removed after. Files are created 0640 and folders 0750 from
their first byte, whatever the umask. The publishing process holds a lock (``flock`` on a lock file in
its temporary folder, which NFS maps to a POSIX lock): a folder left by a killed process is unlocked,
and the next run removes it (``sweep``) and reports what it removed. Sweeping, creating and renaming
run folders take the publish root's lock (``<root>/.calpads-publish.lock``) for a moment. On a share
without file locks, a hidden folder not written for OBJECT_STORE_GRACE counts as left behind.

Object stores (``s3://`` ...) have no folder rename: files are written in place through temporary
names, the manifest last (an earlier attempt's manifest is removed first), and files of a failed
attempt are removed. A process killed mid-way can leave extract files without a manifest; a folder
without ``manifest.json`` is never a result, and the next run removes such files once they are older
than ``OBJECT_STORE_GRACE`` (a run still writing them is younger).

A missing publish root is never created: a share that is not mounted fails the run
(``PublishShareError``) instead of filling the worker's local disk.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from calpads.failures import PartFailure, PublishShareError, WorkFolderError, failing_part
from calpads.private_files import open_private

log = logging.getLogger(__name__)

FILE_MODE = 0o640
DIR_MODE = 0o750
INCOMPLETE = ".incomplete"
REPLACED = ".replaced"
LOCK_NAME = ".calpads-publish.lock"   # in the publish root, and in a folder being built (removed before its rename)
NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}
OBJECT_STORE_GRACE = 6 * 3600     # seconds: an object-store folder without manifest older than this is stale
CHUNK = 1 << 22

T = TypeVar("T")


class PublishInProgress(PartFailure):
    part = "publish share"
    what_to_do = ("Another attempt of this run is writing its folder right now (e.g. a task that lost its worker "
                  "but still runs). Wait for it to end, then clear the task.")


def run_folder(root: Any, academic_year: str, record_type: str, run_id: str) -> Any:
    """<publish_root>/<academic_year>/<RECORD TYPE>/<run id>/ (see docs/architecture.md)."""
    return root / academic_year / record_type / run_id.replace("/", "_")


def is_local(path: Any) -> bool:
    return getattr(path, "protocol", "file") in ("file", "local", "")


def _os_path(path: Any) -> str:
    return path.path if hasattr(path, "protocol") else str(path)


def _restrict(path: Any, mode: int) -> None:
    if is_local(path):
        os.chmod(_os_path(path), mode)


# --------------------------------------------------------------------------- folders and files
def check_root(root: Any) -> None:
    """The publish root must already exist: a share that is not mounted is never replaced by a local folder."""
    if not is_local(root):
        return   # object stores: a missing bucket fails at the first write
    with failing_part(PublishShareError, f"The publish folder {root} could not be checked"):
        if not os.path.isdir(_os_path(root)):
            raise PublishShareError(
                f"Publish failed: the publish folder {root} is missing (is the share mounted?). A run never creates "
                f"it: create or mount it, or correct the publish folder setting (the calpads_publish_root Variable, or "
                f"the LEA's publish_root in the LEA file).")


def ensure_folder(folder: Any) -> None:
    """Create folder (and missing parents) owner/group-only. Callers check the root first (check_root)."""
    if not is_local(folder):
        folder.mkdir(parents=True, exist_ok=True)
        return
    path = Path(_os_path(folder))
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):   # only the folders made here: an existing one may belong to someone else
        try:
            os.mkdir(p, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(p, DIR_MODE)   # the umask may have removed the group's bits


def put_file(local: Path, dest_folder: Any, name: str) -> None:
    """Copy a local file to dest_folder/name through a temporary name, then rename. Local files are 0640
    from the first byte and synced to disk before the rename."""
    tmp = dest_folder / f".{name}.partial"
    try:
        if is_local(dest_folder):
            _copy_local(local, _os_path(tmp))
        else:
            with _source(local) as src, tmp.open("wb") as dst:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    dst.write(chunk)
        tmp.rename(dest_folder / name)
    except BaseException:
        _discard(tmp)   # disk full, read-only, network error: no partial file stays behind
        raise


def _copy_local(local: Path, dest: str) -> None:
    with _source(local) as src:
        with open_private(dest, "wb", FILE_MODE) as dst:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())


def _source(local: Path) -> Any:
    """The run's own file in its work folder: an error opening it is the work folder's, not the share's."""
    with failing_part(WorkFolderError, f"Publish failed: the work file {local} could not be read"):
        return local.open("rb")


def put_json(data: dict, dest_folder: Any, name: str) -> None:
    tmp = dest_folder / f".{name}.partial"
    body = json.dumps(data, indent=2, sort_keys=True, default=str).encode()
    try:
        if is_local(dest_folder):
            with open_private(_os_path(tmp), "wb", FILE_MODE) as dst:
                dst.write(body)
                dst.flush()
                os.fsync(dst.fileno())
        else:
            with tmp.open("wb") as dst:
                dst.write(body)
        tmp.rename(dest_folder / name)
    except BaseException:
        _discard(tmp)
        raise


def _discard(path: Any) -> None:
    try:
        if path.exists():
            path.unlink()
    except OSError:   # e.g. a read-only folder, where nothing could be written in the first place
        pass


def remove_stale(dest_folder: Any, keep: Iterable[str]) -> list[str]:
    """Remove extract files and temporary names that a previous attempt of this run
    left behind and this attempt does not publish (the folder's .txt files must be
    exactly this run's extract files)."""
    keep = set(keep)
    removed = []
    if not dest_folder.exists():
        return removed
    for child in dest_folder.iterdir():
        name = child.name
        if (name.endswith(".txt") or name.endswith(".partial")) and name not in keep:
            child.unlink()
            removed.append(name)
    return removed


COPY_THREADS = 8   # a report holds a file per school: their copies wait on the disk (fsync) side by side


def put_tree(local_dir: Path, dest_folder: Any) -> list[str]:
    """Copy a local folder (the validation report) file by file, each through a temporary name; on a local share
    several files at a time. Returns once every copy has ended; the first error is raised."""
    copies = []
    for path in sorted(local_dir.rglob("*")):
        if path.is_file():
            rel = path.relative_to(local_dir)
            target = dest_folder
            for part in rel.parts[:-1]:   # each level, so no intermediate folder keeps the umask's 0755
                target = target / part
                ensure_folder(target)
            copies.append((path, target, rel))
    if is_local(dest_folder) and len(copies) > 1:
        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:   # leaving the block waits for every copy
            done = [pool.submit(put_file, path, target, rel.parts[-1]) for path, target, rel in copies]
        for future in done:
            future.result()
    else:
        for path, target, rel in copies:
            put_file(path, target, rel.parts[-1])
    return [rel.as_posix() for _, _, rel in copies]


# --------------------------------------------------------------------------- a whole run folder
def publish_folder(root: Any, final: Any, fill: Callable[[Any], T]) -> tuple[T, list[dict[str, Any]]]:
    """Make ``final`` (a run folder under ``root``) hold exactly what ``fill(folder)`` writes into the folder
    it is given, whole or not at all. Returns fill's result and what the sweep of stale folders removed.
    Errors of the share are raised as PublishShareError."""
    check_root(root)
    with failing_part(PublishShareError, f"Publish failed: the run folder {final} could not be written"):
        ensure_folder(final.parent)
        if not is_local(final):
            swept = sweep_object_store(final.parent, own=final.name)
            return _fill_in_place(final, fill), swept
        return _publish_local(_os_path(root), final, fill)


def _publish_local(root_p: str, final: Any, fill: Callable[[Any], T]) -> tuple[T, list[dict[str, Any]]]:
    parent = final.parent
    tmp, aside = parent / f".{final.name}{INCOMPLETE}", parent / f".{final.name}{REPLACED}"
    tmp_p, final_p, aside_p, parent_p = (_os_path(p) for p in (tmp, final, aside, parent))
    with _root_lock(root_p):       # no sweep sees our new folder before it is locked
        swept = sweep(parent)
        if os.path.exists(tmp_p):       # still there: a live attempt of this very run holds it
            raise PublishInProgress(f"Publish failed: {tmp} is being written by another attempt of this run")
        os.mkdir(tmp_p, 0o700)
        lock_fd = _hold(os.path.join(tmp_p, LOCK_NAME))
    moved_aside = False
    try:
        result = fill(tmp)
        os.chmod(tmp_p, DIR_MODE)
        with _root_lock(root_p):
            os.unlink(os.path.join(tmp_p, LOCK_NAME))   # still held: no sweep runs until the rename is done
            if os.path.exists(final_p):
                os.rename(final_p, aside_p)
                moved_aside = True
            os.rename(tmp_p, final_p)
            _fsync_dir(parent_p)
    except BaseException:
        shutil.rmtree(tmp_p, ignore_errors=True)
        if moved_aside and not os.path.exists(final_p):
            try:   # the earlier folder goes back: a failed re-publish leaves what was there
                os.rename(aside_p, final_p)
            except OSError:
                log.error("Could not put %s back after a failed publish: it is in %s", final, aside)
        raise
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    if moved_aside:
        shutil.rmtree(aside_p, ignore_errors=True)
    return result, swept


def _fill_in_place(final: Any, fill: Callable[[Any], T]) -> T:
    """Object stores: the folder is complete when its manifest exists; the earlier manifest goes first."""
    ensure_folder(final)
    manifest = final / "manifest.json"
    if manifest.exists():
        manifest.unlink()
    remove_stale(final, [])
    try:
        return fill(final)
    except BaseException:
        try:
            remove_stale(final, [])
        except OSError:
            log.error("Could not remove the files of the failed publish from %s: remove them by hand", final)
        raise


@contextmanager
def _root_lock(root: str) -> Iterator[None]:
    """The publish root's lock (a hidden lock file: a folder cannot be opened for writing, which NFS needs
    for an exclusive lock), held briefly while sweeping and while creating or renaming a run folder."""
    fd = _hold(os.path.join(root, LOCK_NAME), wait=True)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _hold(path: str, *, wait: bool = False) -> int | None:
    """Open (create, 0600) and lock path; the open descriptor holds the lock until closed or the process dies.
    None when the file system has no locks (then the sweep goes by age, see sweep)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError as exc:
        os.close(fd)
        if exc.errno in NO_LOCKS:
            log.warning("The publish share does not support file locks (%s): stale folders are removed by age",
                        exc.strerror)
            return None
        raise


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError:   # some network file systems refuse fsync on a folder: the rename is done either way
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- sweeping what a crash left
def sweep_locked(root: Any, parent: Any) -> list[dict[str, Any]]:
    """sweep() with the root's lock taken (so that no publication starting now is mistaken for a dead one)."""
    with failing_part(PublishShareError, f"The publish folder {parent} could not be cleaned"):
        with _root_lock(_os_path(root)):
            return sweep(parent)


def sweep(parent: Any) -> list[dict[str, Any]]:
    """Remove the hidden temporary folders in ``parent`` (``<root>/<year>/<RECORD TYPE>/``) that no live
    process holds: what a killed publication left. Returns what was removed (folder and file names).
    Call with the root's lock held (publish_folder and sweep_locked do)."""
    swept: list[dict[str, Any]] = []
    base = _os_path(parent)
    for name in sorted(os.listdir(base)):
        if not (name.startswith(".") and name.endswith((INCOMPLETE, REPLACED))):
            continue
        path = os.path.join(base, name)
        if not os.path.isdir(path) or (name.endswith(INCOMPLETE) and _alive(path)):
            continue
        files = sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs
                       if f != LOCK_NAME)
        shutil.rmtree(path, ignore_errors=True)
        kind = "interrupted publication" if name.endswith(INCOMPLETE) else "earlier version being replaced"
        swept.append({"folder": str(parent / name), "left_by": kind, "files": files})
        log.warning("Removed %s left by an %s (%d files, never visible as a result)", name, kind, len(files))
    return swept


def _alive(folder: str) -> bool:
    """True while a live process holds the folder's lock file (a killed one released it). A folder without
    one was left between its creation and its lock (under the root's lock, so never by a live process).
    Without file locks on the share: alive while written in the last OBJECT_STORE_GRACE seconds."""
    path = os.path.join(folder, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError as exc:
        if exc.errno not in NO_LOCKS:
            raise
        newest = max([os.lstat(os.path.join(d, f)).st_mtime for d, _, fs in os.walk(folder) for f in fs]
                     + [os.lstat(folder).st_mtime])
        return time.time() - newest < OBJECT_STORE_GRACE
    finally:
        os.close(fd)


def sweep_object_store(parent: Any, own: str) -> list[dict[str, Any]]:
    """Object stores: remove extract files from other runs' folders that have no manifest and were last
    written more than OBJECT_STORE_GRACE ago (what a killed publication left)."""
    swept: list[dict[str, Any]] = []
    if not parent.exists():
        return swept
    now = time.time()
    for folder in parent.iterdir():
        if folder.name == own or not folder.is_dir() or (folder / "manifest.json").exists():
            continue
        stale = [p for p in folder.iterdir() if p.name.endswith((".txt", ".partial"))]
        ages = [_age(p, now) for p in stale]
        if not stale or any(a is None or a < OBJECT_STORE_GRACE for a in ages):
            continue
        for p in stale:
            p.unlink()
        swept.append({"folder": str(folder), "left_by": "interrupted publication",
                      "files": sorted(p.name for p in stale)})
        log.warning("Removed %d extract files without a manifest from %s", len(stale), folder)
    return swept


def _age(path: Any, now: float) -> float | None:
    """Seconds since the object was last written, from the store's own metadata; None when it gives none."""
    st = path.stat()
    info = st.as_info() if hasattr(st, "as_info") else (st if hasattr(st, "get") else {})
    for key in ("LastModified", "last_modified", "mtime", "updated", "created"):
        value = info.get(key)
        if value:
            return now - (value.timestamp() if hasattr(value, "timestamp") else float(value))
    mtime = getattr(st, "st_mtime", 0)
    return now - float(mtime) if mtime else None
