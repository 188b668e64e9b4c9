"""Readable reports (HTML + CSV) of the afterschool work, by Local Student ID only: owner-only (0600, folders
0700) in the run's work folder, owner/group-only (0640, 0750) in the published run folder, whatever the umask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from calpads import private_files, templates
from calpads.maintenance import private_dirs
from calpads.publish import target

FILE_MODE = 0o600
DIR_MODE = 0o700
HTML_ROWS = 5000


def write_private(path: Path, text: str) -> Path:
    private_dirs(path.parent)   # every level it creates 0700 (mkdir's mode reaches only the last one)
    return private_files.write_private(path, text, FILE_MODE)


def table(df: pd.DataFrame, limit: int = HTML_ROWS) -> dict[str, Any]:
    """A frame as templates/page.html shows it: its columns, its first ``limit`` rows, how many more the CSV has."""
    return {"columns": [str(c) for c in df.columns], "rows": list(df.head(limit).itertuples(index=False, name=None)),
            "more": max(len(df) - limit, 0)}


def page(title: str, intro: str, sections: list[tuple[str, dict[str, Any] | None]], **values: Any) -> str:
    """A report page from templates/page.html: ``title``, the intro template ``intro`` (rendered with ``values``),
    then each section's heading and ``table(...)`` (None: "None.")."""
    return templates.render("calpads.afterschool", "page.html", title=title, intro=intro, sections=sections,
                            **values)


def write_frame(folder: Path, name: str, df: pd.DataFrame) -> Path:
    return write_private(folder / name, df.to_csv(index=False))


def publish_folder(local: Path, root: Any, dest: Any) -> list[str]:
    """Publish the local report folder as the run folder ``dest`` under the publish root ``root`` (ObjectStoragePath
    or Path), whole or not at all, through calpads.publish.target: files 0640 and folders 0750 from their first
    byte, and a missing publish root is never created (PublishShareError: "is the share mounted?")."""
    def fill(folder: Any) -> list[str]:
        written = []
        for path in sorted(local.rglob("*")):
            if not path.is_file() or path.name.startswith("."):   # a .partial of an interrupted write
                continue
            rel = path.relative_to(local)
            into = folder
            for part in rel.parts[:-1]:
                into = into / part
                target.ensure_folder(into)
            target.put_file(path, into, rel.parts[-1])
            written.append(rel.as_posix())
        return written

    return target.publish_folder(root, dest, fill)[0]   # what it swept (a killed attempt's folder) is logged there
