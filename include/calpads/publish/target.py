"""Copy rendered files to the publish root (any ObjectStoragePath URL) whole or not at all.

Each file goes to a hidden temporary name and is renamed into place; the
manifest is written last, so a folder with a manifest is complete. Local
files are made readable by owner and group only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FILE_MODE = 0o640
DIR_MODE = 0o750


def run_folder(root: Any, academic_year: str, record_type: str, run_id: str) -> Any:
    """<publish_root>/<academic_year>/<RECORD TYPE>/<run id>/ (contract §3)."""
    return root / academic_year / record_type / run_id.replace("/", "_")


def _restrict(path: Any, mode: int) -> None:
    if getattr(path, "protocol", "file") in ("file", "local", ""):
        os.chmod(path.path if hasattr(path, "path") else path, mode)


def ensure_folder(folder: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _restrict(folder, DIR_MODE)


def put_file(local: Path, dest_folder: Any, name: str) -> None:
    """Copy a local file to dest_folder/name through a temporary name, then rename."""
    tmp = dest_folder / f".{name}.partial"
    try:
        with local.open("rb") as src, tmp.open("wb") as dst:
            for chunk in iter(lambda: src.read(1 << 22), b""):
                dst.write(chunk)
        _restrict(tmp, FILE_MODE)
        tmp.rename(dest_folder / name)
    except BaseException:
        _discard(tmp)   # disk full, read-only, network error: no partial file stays behind
        raise


def put_json(data: dict, dest_folder: Any, name: str) -> None:
    tmp = dest_folder / f".{name}.partial"
    try:
        with tmp.open("wb") as dst:
            dst.write(json.dumps(data, indent=2, sort_keys=True, default=str).encode())
        _restrict(tmp, FILE_MODE)
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


def put_tree(local_dir: Path, dest_folder: Any) -> list[str]:
    """Copy a local folder (the validation report) file by file, each through a temporary name."""
    written = []
    for path in sorted(local_dir.rglob("*")):
        if path.is_file():
            rel = path.relative_to(local_dir)
            target = dest_folder
            for part in rel.parts[:-1]:   # each level, so no intermediate folder keeps the umask's 0755
                target = target / part
                ensure_folder(target)
            put_file(path, target, rel.parts[-1])
            written.append(rel.as_posix())
    return written
