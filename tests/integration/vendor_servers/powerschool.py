"""A PowerSchool plugin API over a contract SIS database (see calpads.sources.powerschool_api for the contract).

Implements: POST /oauth/access_token (Basic client credentials), GET /ws/v1/metadata,
GET /ws/schema/table/{t}[/count|/metadata] with projection, q (==, =gt=, =ge=, =lt=, =le=, ';'
= and), page (from 1) and pagesize (at most the plugin maximum, else 400), and
POST /ws/schema/query/{name}[/count] for one flattened PowerQuery,
``com.calpads.sis.students`` (STUDENTS joined with S_CA_STU_X). Values are text;
null columns are left out, as PowerSchool does. A table outside ``granted`` answers
403; ``writable`` tables report FullAccess column access, the others ViewOnly.
Tokens expire after ``token_ttl`` seconds or ``token_max_uses`` authorised calls.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from typing import Any

import sqlalchemy as sa

from calpads.sources.sis_schema import SIS_TABLES
from tests.integration.vendor_servers.common import Request, Response, VendorServer, read_tables

Q_CLAUSE = re.compile(r"^([a-z0-9_.]+)(==|=gt=|=ge=|=lt=|=le=)(.*)$")
STUDENTS_PQ = "com.calpads.sis.students"
EXTRA_TABLES = ("U_AFTERSCHOOL_PARTICIPATION",)   # district custom table (afterschool write-back), when present


def _cmp(a: str, b: str) -> int:
    if a.lstrip("-").isdigit() and b.lstrip("-").isdigit():
        x, y = int(a), int(b)
    else:
        x, y = a, b  # type: ignore[assignment]
    return (x > y) - (x < y)


def q_filter(q: str | None) -> list[tuple[str, str, str]]:
    out = []
    for clause in (q or "").split(";"):
        if not clause:
            continue
        m = Q_CLAUSE.match(clause)
        if not m:
            raise ValueError(clause)
        out.append((m.group(1).split(".")[-1], m.group(2), m.group(3)))
    return out


def q_match(row: dict[str, str | None], clauses: list[tuple[str, str, str]]) -> bool:
    for col, op, value in clauses:
        v = row.get(col)
        if v is None:
            return False
        c = _cmp(v, value)
        ok = {"==": c == 0, "=gt=": c > 0, "=ge=": c >= 0, "=lt=": c < 0, "=le=": c <= 0}[op]
        if not ok:
            return False
    return True


class PowerSchoolServer(VendorServer):
    def __init__(self, engine: sa.Engine, client_id: str, client_secret: str, *, max_page_size: int = 1000,
                 token_ttl: int = 3600, token_max_uses: int | None = None, granted: set[str] | None = None,
                 writable: set[str] | None = None):
        super().__init__()
        insp = sa.inspect(engine)
        names = {n.lower(): n for n in insp.get_table_names()}
        cols = {t.lower(): [c["name"].lower() for c in insp.get_columns(names[t.lower()])]
                for t in (*SIS_TABLES, *EXTRA_TABLES) if t.lower() in names}
        self.tables = read_tables(engine, cols)
        self.columns = cols
        self.client_id, self.client_secret = client_id, client_secret
        self.max_page_size = max_page_size
        self.token_ttl, self.token_max_uses = token_ttl, token_max_uses
        self.granted = {t.lower() for t in (granted if granted is not None else (*SIS_TABLES, *EXTRA_TABLES))}
        self.writable = {t.lower() for t in (writable or set())}
        self.tokens: dict[str, list[float]] = {}   # token -> [expires_at, uses]
        self.issued: list[str] = []
        self._tok_lock = threading.Lock()

    # -- auth ----------------------------------------------------------------------------
    def _issue(self, req: Request) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if req.headers.get("authorization") != f"Basic {expected}":
            return Response(401, {"error": "invalid_client"})
        if req.form().get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        token = uuid.uuid4().hex
        with self._tok_lock:
            self.tokens[token] = [time.monotonic() + self.token_ttl, 0]
            self.issued.append(token)
        return Response(200, {"access_token": token, "token_type": "Bearer", "expires_in": str(self.token_ttl)})

    def _authorised(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return False
        with self._tok_lock:
            entry = self.tokens.get(auth[7:])
            if entry is None or time.monotonic() > entry[0]:
                return False
            if self.token_max_uses is not None and entry[1] >= self.token_max_uses:
                return False
            entry[1] += 1
        return True

    # -- routes ----------------------------------------------------------------------------
    def route(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        if path == "/oauth/access_token" and req.method == "POST":
            return self._issue(req)
        if not self._authorised(req):
            return Response(401, {"message": "Invalid access token"})
        if path == "/ws/v1/metadata":
            return Response(200, {"metadata": {"plugin_id": 1, "powerschool_version": "25.4.0", "state": "CA",
                                               "schema_table_query_max_page_size": self.max_page_size}})
        m = re.fullmatch(r"/ws/schema/table/([A-Za-z0-9_]+)(/count|/metadata)?", path)
        if m and req.method == "GET":
            return self._table(m.group(1).lower(), m.group(2), req)
        m = re.fullmatch(r"/ws/schema/table/([A-Za-z0-9_]+)(?:/([0-9]+))?", path)
        if m and req.method in ("POST", "PUT"):
            return self._write(m.group(1).lower(), m.group(2), req)
        m = re.fullmatch(r"/ws/schema/query/([A-Za-z0-9_.]+?)(/count)?", path)
        if m and req.method == "POST":
            return self._powerquery(m.group(1), m.group(2), req)
        return Response(404, {"message": "Not Found"})

    def _table(self, table: str, suffix: str | None, req: Request) -> Response:
        if table not in self.columns:
            return Response(404, {"message": f"Invalid table name {table}"})
        if table not in self.granted:
            return Response(403, {"message": "Access denied"})
        if suffix == "/metadata":
            access = "FullAccess" if table in self.writable else "ViewOnly"
            return Response(200, {"name": table, "columns": [{"name": c, "access": access}
                                                             for c in self.columns[table]]})
        try:
            clauses = q_filter(req.query.get("q"))
        except ValueError:
            return Response(400, {"message": "Invalid query"})
        rows = [r for r in self.tables[table] if q_match(r, clauses)]
        if suffix == "/count":
            return Response(200, {"count": len(rows)})
        projection = req.query.get("projection", "*")
        cols = self.columns[table] if projection == "*" else [c.strip().lower() for c in projection.split(",")]
        if any(c not in self.columns[table] for c in cols):
            return Response(400, {"message": "Invalid projection"})
        page, size = self._paging(req)
        if size is None:
            return Response(400, {"message": f"pagesize exceeds {self.max_page_size}"})
        chunk = rows[(page - 1) * size: page * size]
        key = self.columns[table][0]
        return Response(200, {"name": table, "record": [
            {"id": int(r[key]), "name": table, "tables": {table: {c: r[c] for c in cols if r[c] is not None}}}
            for r in chunk]})

    def _write(self, table: str, rec_id: str | None, req: Request) -> Response:
        """POST = insert, PUT /{id} = update; body {"tables": {table: {column: value}}} (in memory)."""
        if table not in self.columns:
            return Response(404, {"message": f"Invalid table name {table}"})
        if table not in self.granted or table not in self.writable:
            return Response(403, {"message": "Access denied"})
        values = ((req.json() or {}).get("tables") or {}).get(table) or {}
        if any(c not in self.columns[table] for c in values):
            return Response(400, {"message": "Invalid column"})
        rows, key = self.tables[table], self.columns[table][0]
        if req.method == "POST":
            new_id = str(max((int(r[key]) for r in rows), default=0) + 1)
            rows.append({c: (new_id if c == key else (None if values.get(c) is None else str(values[c])))
                         for c in self.columns[table]})
            return Response(200, {"result": [{"status": "SUCCESS", "action": "INSERT",
                                              "success_message": {"id": new_id}}]})
        row = next((r for r in rows if r[key] == rec_id), None)
        if row is None:
            return Response(404, {"message": "Not Found"})
        row.update({c: str(v) for c, v in values.items()})
        return Response(200, {"result": [{"status": "SUCCESS", "action": "UPDATE", "success_message": {"id": rec_id}}]})

    def _paging(self, req: Request) -> tuple[int, int | None]:
        page = int(req.query.get("page") or 1)
        size = int(req.query.get("pagesize") or self.max_page_size)
        return max(page, 1), (None if size > self.max_page_size else (size or self.max_page_size))

    def _powerquery(self, name: str, suffix: str | None, req: Request) -> Response:
        if name != STUDENTS_PQ:
            return Response(404, {"message": "Invalid query name"})
        if "students" not in self.granted or "s_ca_stu_x" not in self.granted:
            return Response(403, {"message": "Access denied"})
        stu_x = {r["studentsdcid"]: r for r in self.tables["s_ca_stu_x"]}
        rows: list[dict[str, Any]] = []
        for s in self.tables["students"]:
            x = stu_x.get(s["dcid"], {})
            rec = {"students.id": s["id"], "students.dcid": s["dcid"], "students.student_number": s["student_number"],
                   "s_ca_stu_x.legallastname": x.get("legallastname")}
            rows.append({k: v for k, v in rec.items() if v is not None})
        if suffix == "/count":
            return Response(200, {"count": len(rows)})
        page, size = self._paging(req)
        if size is None:
            return Response(400, {"message": f"pagesize exceeds {self.max_page_size}"})
        return Response(200, {"name": name, "record": rows[(page - 1) * size: page * size]})
