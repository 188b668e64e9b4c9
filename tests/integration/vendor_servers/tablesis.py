"""A made-up vendor, "TableSIS", for the registry test: the SIS tables as JSON, one API key header.

GET /api/tables/{table}?offset=&limit=  -> {"total": n, "rows": [{column: text, ...}]}
GET /api/ping                           -> {"ok": true}
Every request needs ``X-Api-Key``: 401 without it or with a wrong one.
"""

from __future__ import annotations

import sqlalchemy as sa

from calpads.sources.sprg_frames import SPRG_TABLE_COLUMNS
from tests.integration.vendor_servers.common import Request, Response, VendorServer, read_tables


class TableSisServer(VendorServer):
    def __init__(self, engine: sa.Engine, api_key: str):
        super().__init__()
        self.api_key = api_key
        self.tables = read_tables(engine, SPRG_TABLE_COLUMNS)

    def route(self, req: Request) -> Response:
        if req.headers.get("x-api-key") != self.api_key:
            return Response(401, {"message": "bad key"})
        if req.path == "/api/ping":
            return Response(200, {"ok": True})
        prefix = "/api/tables/"
        if req.method != "GET" or not req.path.startswith(prefix) or req.path[len(prefix):] not in self.tables:
            return Response(404, {"message": "not found"})
        rows = self.tables[req.path[len(prefix):]]
        offset, limit = int(req.query.get("offset", 0)), int(req.query.get("limit", 100))
        return Response(200, {"total": len(rows), "rows": rows[offset: offset + limit]})
