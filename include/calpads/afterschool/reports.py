"""Readable reports (HTML + CSV) of the afterschool work, by Local Student ID only: owner-only (0600, folders
0700) in the run's work folder, owner/group-only (0640, 0750) in the published run folder, whatever the umask."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from calpads import private_files
from calpads.maintenance import private_dirs
from calpads.publish import target

FILE_MODE = 0o600
DIR_MODE = 0o700
HTML_ROWS = 5000


def write_private(path: Path, text: str) -> Path:
    private_dirs(path.parent)   # every level it creates 0700 (mkdir's mode reaches only the last one)
    return private_files.write_private(path, text, FILE_MODE)


def table_html(df: pd.DataFrame, limit: int = HTML_ROWS) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.head(limit).itertuples(index=False):
        body.append("<tr>" + "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row) + "</tr>")
    more = f"<p>{len(df) - limit} more rows in the CSV.</p>" if len(df) > limit else ""
    return f"<table border='1' cellspacing='0' cellpadding='3'><tr>{head}</tr>{''.join(body)}</table>{more}"


def page(title: str, intro: str, sections: list[tuple[str, str]]) -> str:
    parts = [f"<h2>{html.escape(t)}</h2>{body}" for t, body in sections]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{font-size:13px;text-align:left}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{intro}{''.join(parts)}</body></html>")


def write_frame(folder: Path, name: str, df: pd.DataFrame) -> Path:
    return write_private(folder / name, df.to_csv(index=False))


def counts_html(counts: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in counts.items())
    return f"<table border='1' cellspacing='0' cellpadding='3'>{rows}</table>"


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
