"""Readable reports (HTML + CSV) of the afterschool work, by Local Student ID only, owner-only (0600)."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import pandas as pd

FILE_MODE = 0o600
DIR_MODE = 0o700
HTML_ROWS = 5000


def write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    tmp = path.with_name(f".{path.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


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


def publish_folder(local: Path, dest: Any) -> list[str]:
    """Copy a local report folder to the publish root (ObjectStoragePath or Path), files 0600."""
    written = []
    dest.mkdir(parents=True, exist_ok=True)
    _chmod(dest, DIR_MODE)
    for path in sorted(local.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        rel = path.relative_to(local)
        folder = dest
        for part in rel.parts[:-1]:
            folder = folder / part
            folder.mkdir(parents=True, exist_ok=True)
            _chmod(folder, DIR_MODE)
        tmp = folder / f".{rel.parts[-1]}.partial"
        with path.open("rb") as src, tmp.open("wb") as dst:
            dst.write(src.read())
        _chmod(tmp, FILE_MODE)
        tmp.rename(folder / rel.parts[-1])
        written.append(rel.as_posix())
    return written


def _chmod(path: Any, mode: int) -> None:
    if getattr(path, "protocol", "file") in ("file", "local", ""):
        os.chmod(path.path if hasattr(path, "path") else path, mode)
