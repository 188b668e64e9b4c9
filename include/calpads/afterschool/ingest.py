"""Read the afterschool platform's export (docs/afterschool.md), strictly.

A file is taken whole or rejected whole (``MalformedExport``, with a message the
afterschool director can act on): it must be UTF-8 (a BOM is accepted and dropped),
lines may end in LF or CRLF, the header must hold exactly the contract's columns
(any order), and every line must have as many fields as the header. Bad *values* are
not this module's business: the gate holds back the rows that carry them.

The export is two files: the attendance (one row per student per session) and the
expanded-learning registrations (``student_number,ssid,program,registration_date``: CALPADS
reports every registered student, even one who never attended).

Sources: a file drop folder (Variable ``afterschool_drop_path``: the folder, whose newest
``attendance*.csv`` and ``registrations*.csv`` are taken, or the attendance file itself, with the
registrations beside it) or an HTTP endpoint (connection ``afterschool_api``: extras ``endpoint``
and ``registrations_endpoint``; CSV, or JSON = a list of objects / {"records": [...]}, same columns).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from calpads.afterschool import ATTENDANCE_COLUMNS, REGISTRATION_COLUMNS

FILES = {"attendance": ATTENDANCE_COLUMNS, "registrations": REGISTRATION_COLUMNS}


class MalformedExport(ValueError):
    """The export cannot be read as the contract's CSV: nothing of it was imported."""


@dataclass
class Export:
    rows: pd.DataFrame      # ATTENDANCE_COLUMNS as text (None = blank) + line (1 = first data line)
    checksum: str           # sha256 of the bytes received
    source: str             # file name or endpoint path (no query string, no credentials)
    size: int


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _decode(data: bytes, source: str) -> str:
    try:
        text = data.decode("utf-8-sig")   # drops a UTF-8 BOM
    except UnicodeDecodeError as exc:
        raise MalformedExport(
            f"{source} is not UTF-8 text (byte {exc.start} cannot be read): export it again from the afterschool "
            "platform as 'CSV UTF-8'. Nothing from this file was imported.") from None
    if "\x00" in text:
        raise MalformedExport(f"{source} holds NUL bytes (UTF-16 or a binary file?): export it again as 'CSV UTF-8'. "
                              "Nothing from this file was imported.")
    return text


def _check_header(found: list[str], source: str, expected: tuple[str, ...]) -> list[str]:
    cols = [c.strip().lower() for c in found]
    missing = [c for c in expected if c not in cols]
    extra = [c for c in cols if c not in expected]
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if missing or extra or dupes:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(repr(c) for c in extra)}")
        if dupes:
            parts.append(f"repeated column(s) {', '.join(dupes)}")
        raise MalformedExport(f"{source}: {'; '.join(parts)}. The export must have exactly the columns "
                              f"{','.join(expected)}. Nothing from this file was imported.")
    return cols


def parse_csv(data: bytes, source: str, expected: tuple[str, ...] = ATTENDANCE_COLUMNS) -> Export:
    text = _decode(data, source)
    if not text.strip():
        raise MalformedExport(f"{source} is empty. Nothing was imported.")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        cols = _check_header(header, source, expected)
        records: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue            # blank line (e.g. a trailing CRLF)
            if len(row) != len(cols):
                raise MalformedExport(
                    f"{source}, data line {reader.line_num - 1}: {len(row)} fields where the header has {len(cols)} "
                    "(a comma inside a value must be quoted). Nothing from this file was imported.")
            records.append([v.strip() for v in row])
            lines.append(reader.line_num - 1)
    except csv.Error as exc:
        raise MalformedExport(f"{source}, line {reader.line_num}: not valid CSV ({exc}). Nothing from this file "
                              "was imported.") from None
    df = pd.DataFrame(records, columns=cols, dtype="object")[list(expected)] if records else \
        pd.DataFrame({c: pd.Series(dtype="object") for c in expected})
    df = df.where(df.map(lambda v: v is not None and v != ""), None)
    df["line"] = lines
    return Export(df.reset_index(drop=True), checksum(data), source, len(data))


def parse_json(data: bytes, source: str, expected: tuple[str, ...] = ATTENDANCE_COLUMNS) -> Export:
    text = _decode(data, source)
    try:
        body: Any = json.loads(text)
    except ValueError:
        raise MalformedExport(f"{source}: the endpoint's answer is not JSON. Nothing was imported.") from None
    records = body.get("records") if isinstance(body, dict) else body
    if not isinstance(records, list) or any(not isinstance(r, dict) for r in records):
        raise MalformedExport(f"{source}: expected a JSON list of records (or {{\"records\": [...]}}). "
                              "Nothing was imported.")
    for i, rec in enumerate(records, start=1):
        try:
            _check_header(list(rec.keys()), f"{source} record {i}", expected)
        except MalformedExport:
            raise
    rows = [[None if r.get(c) in (None, "") else str(r.get(c)).strip() for c in expected] for r in records]
    df = pd.DataFrame(rows, columns=list(expected), dtype="object")
    df["line"] = list(range(1, len(records) + 1))
    return Export(df, checksum(data), source, len(data))


def parse(data: bytes, source: str, content_type: str = "", kind: str = "attendance") -> Export:
    """kind: attendance | registrations (which columns the file must have)."""
    if "json" in content_type.lower() or source.lower().endswith(".json"):
        return parse_json(data, source, FILES[kind])
    return parse_csv(data, source, FILES[kind])


def read_drop(path: str | Path, kind: str = "attendance") -> tuple[bytes, str]:
    """One file of the export in the drop folder: the newest ``<kind>*.csv`` / ``.json`` in it. When the
    path is the attendance file itself, it is that file (attendance) or the newest registrations file beside it."""
    p = Path(path)
    if p.is_file() and kind != "attendance":
        p = p.parent
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if f.suffix.lower() in (".csv", ".json") and f.is_file()
                        and f.name.startswith(kind)), key=lambda f: (f.stat().st_mtime, f.name))
        if not files:
            raise FileNotFoundError(f"no {kind}*.csv in the afterschool drop folder {p}: ask the afterschool "
                                    "platform vendor whether last night's export ran (it must hold both the attendance "
                                    "and the registrations)")
        p = files[-1]
    if not p.exists():
        raise FileNotFoundError(f"the afterschool export {p} does not exist: check the Variable afterschool_drop_path")
    return p.read_bytes(), p.name


ENDPOINTS = {"attendance": ("endpoint", "/attendance.csv"), "registrations": ("registrations_endpoint",
                                                                              "/registrations.csv")}


def fetch_http(conn: Any, timeout: float = 120.0, kind: str = "attendance") -> tuple[bytes, str, str]:
    """GET one file of the export from the ``afterschool_api`` connection: host (+ schema http/https, port), extra
    {"endpoint": "/exports/attendance", "registrations_endpoint": "/exports/registrations", "token": "..."}
    or login/password for Basic auth."""
    import requests

    extra = dict(conn.extra_dejson or {})
    host = (conn.host or "").rstrip("/")
    if host and "://" not in host:
        host = f"{conn.schema or 'https'}://{host}"
    if conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    key, default = ENDPOINTS[kind]
    endpoint = "/" + str(extra.get(key, default)).lstrip("/")
    headers = {"Accept": "text/csv, application/json"}
    auth = None
    if extra.get("token"):
        headers["Authorization"] = f"Bearer {extra['token']}"
    elif conn.login:
        auth = (conn.login, conn.password or "")
    resp = requests.get(host + endpoint, headers=headers, auth=auth, timeout=timeout)
    if resp.status_code in (401, 403):
        raise PermissionError(f"the afterschool platform refused GET {endpoint} (HTTP {resp.status_code}): ask the "
                              "platform vendor to check the API credentials in the afterschool_api connection")
    resp.raise_for_status()
    return resp.content, endpoint, resp.headers.get("Content-Type", "")
