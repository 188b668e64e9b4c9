"""Threaded http.server base: routing, request log, fault injection, SIS rows as vendor text."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """Answer `status` (with Retry-After when set) to the next `times` requests matching."""

    path_contains: str
    status: int = 500
    times: int = 1
    page: int | None = None
    retry_after: str | None = None
    page_param: str = "page"
    method: str | None = None

    def matches(self, req: Request) -> bool:
        if self.times <= 0 or self.path_contains not in req.path:
            return False
        if self.method and req.method != self.method:
            return False
        return self.page is None or req.query.get(self.page_param) == str(self.page)


@dataclass
class LogEntry:
    method: str
    path: str
    query: dict[str, str]
    status: int


class VendorServer:
    """Subclasses implement ``route(req) -> Response``."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.log: list[LogEntry] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> VendorServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms a request
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                              {k.lower(): v for k, v in self.headers.items()}, body)
                resp = server.dispatch(req)
                payload = b"" if resp.body is None else json.dumps(resp.body).encode()
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> VendorServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- dispatch ----------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        with self._lock:
            fault = next((f for f in self.faults if f.matches(req)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None:
            resp = Response(fault.status, {"message": "injected fault"},
                            {"Retry-After": fault.retry_after} if fault.retry_after else {})
        else:
            try:
                resp = self.route(req)
            except Exception as exc:  # a bug in the fake server shows as a 500 with its type
                resp = Response(500, {"message": type(exc).__name__})
        with self._lock:
            self.log.append(LogEntry(req.method, req.path, dict(req.query), resp.status))
        return resp

    def route(self, req: Request) -> Response:  # pragma: no cover - interface
        raise NotImplementedError

    def requests(self, contains: str = "", method: str | None = None, status: int | None = None) -> list[LogEntry]:
        with self._lock:
            return [e for e in self.log if contains in e.path and (method is None or e.method == method)
                    and (status is None or e.status == status)]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()


def text(v: Any) -> str | None:
    """A database value as the vendor's JSON text (dates ISO)."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def one_student_key(conn: sa.Connection) -> None:
    """Re-key a contract SIS in place as a vendor with one student key holds it (Aeries's StudentID, a
    OneRoster user's identifier): STUDENTS.ID = DCID = STUDENT_NUMBER, every reference to them likewise; and no
    per-enrollment exclusion flag (REENROLLMENTS.STATE_EXCLUDEFROMREPORTING 0)."""
    by_id = "(SELECT CAST(s.student_number AS INTEGER) FROM students s WHERE s.id = {t}.studentid)"
    by_dcid = "(SELECT CAST(s.student_number AS INTEGER) FROM students s WHERE s.dcid = {t}.studentsdcid)"
    for t in ("reenrollments", "attendance"):
        conn.exec_driver_sql(f"UPDATE {t} SET studentid = {by_id.format(t=t)}")  # noqa: S608 - fixed names
    for t in ("s_ca_stu_x", "s_ca_stu_calpadsprograms_c", "s_ca_calpads_studentservices_c"):
        conn.exec_driver_sql(f"UPDATE {t} SET studentsdcid = {by_dcid.format(t=t)}")  # noqa: S608
    conn.exec_driver_sql("UPDATE students SET id = CAST(student_number AS INTEGER), "
                         "dcid = CAST(student_number AS INTEGER)")
    conn.exec_driver_sql("UPDATE reenrollments SET state_excludefromreporting = 0")


def read_tables(engine: sa.Engine, tables: dict[str, list[str]]) -> dict[str, list[dict[str, str | None]]]:
    """The contract tables' rows as text (what a vendor API hands over), ordered by their first column."""
    out: dict[str, list[dict[str, str | None]]] = {}
    with engine.connect() as conn:
        for table, cols in tables.items():
            t = sa.table(table, *(sa.column(c) for c in cols))
            rows = conn.execute(sa.select(*t.c).order_by(t.c[cols[0]])).fetchall()
            out[table] = [{c: text(v) for c, v in zip(cols, row, strict=True)} for row in rows]
    return out


Route = Callable[[Request], Response]
