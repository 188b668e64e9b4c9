"""Work folders: owner-only, and deleted after a retention period.

A run's work folder (``<calpads_work_root>/<dag id>/<run id>/``) holds the run's pulled and built
records as Parquet files, with names, birth dates and SSIDs: every level the pipeline creates is 0700
and every file 0600, whatever the umask. The ``calpads_maintenance`` DAG deletes the work folders of
runs not written for ``[calpads] work_retention_days`` days (default 7): long enough to clear a failed
task the next week, short enough that the work root does not keep every student's data for good.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 7.0


def private_dirs(path: Path) -> None:
    """Create path and its missing parents owner-only (0700); an existing leaf is made 0700 too."""
    missing = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        p = p.parent
    for level in reversed(missing):
        try:
            os.mkdir(level, 0o700)
        except FileExistsError:   # another task created it at the same moment
            pass
        os.chmod(level, 0o700)
    os.chmod(path, 0o700)


def parse_retention_days(raw: str | float | None) -> float:
    """[calpads] work_retention_days: a number of days >= 1 (a shorter one would delete the work of a run
    that failed last night before anyone could clear it)."""
    if raw is None or str(raw).strip() == "":
        return DEFAULT_RETENTION_DAYS
    try:
        days = float(raw)
    except ValueError:
        raise ValueError(f"[calpads] work_retention_days must be a number of days, not {raw!r}") from None
    if days < 1:
        raise ValueError(f"[calpads] work_retention_days must be at least 1 day, not {raw!r}")
    return days


def _newest_write(folder: Path) -> float:
    """The last time anything in the folder was written (a run still being cleared is recent)."""
    newest = folder.stat().st_mtime
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def delete_old_work(work_root: Path, retention_days: float, *, now: float | None = None) -> dict[str, Any]:
    """Delete run work folders (``<work_root>/<dag id>/<run id>/``) with nothing written for retention_days.
    Returns counts and the deleted folders (dag id / run id: no student data)."""
    now = time.time() if now is None else now
    cutoff = now - retention_days * 86400
    root = Path(work_root)
    deleted: list[str] = []
    kept = 0
    freed = 0
    if not root.is_dir():
        return {"deleted": deleted, "kept": kept, "bytes_freed": freed, "retention_days": retention_days}
    for dag_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for run_dir in sorted(p for p in dag_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            if _newest_write(run_dir) >= cutoff:
                kept += 1
                continue
            size = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(run_dir)
            deleted.append(f"{dag_dir.name}/{run_dir.name}")
            freed += size
    log.info("Work folders: %d deleted (nothing written for %s days, %.1f MB freed), %d kept", len(deleted),
             f"{retention_days:g}", freed / 1e6, kept)
    return {"deleted": deleted, "kept": kept, "bytes_freed": freed, "retention_days": retention_days}


def sweep_publish_root(root: Any) -> list[dict[str, Any]]:
    """Every ``<root>/<year>/<RECORD TYPE>/`` folder: remove what killed publications left (hidden, unlocked
    temporary folders; see calpads.publish.target). Local and mounted roots only."""
    from calpads.publish import target

    if not target.is_local(root) or not root.is_dir():
        return []
    swept: list[dict[str, Any]] = []
    for year in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for record_type in sorted(p for p in year.iterdir() if p.is_dir() and not p.name.startswith(".")):
            swept += target.sweep_locked(root, record_type)
    return swept


def swept_email(swept: list[dict[str, Any]]) -> tuple[str, str]:
    """The maintenance email's subject and body (calpads/alerts/templates/maintenance_swept.html)."""
    from calpads import templates

    return (f"[CALPADS] maintenance: removed {len(swept)} interrupted publication folder(s)",
            templates.render("calpads.alerts", "maintenance_swept.html", swept=swept))
