"""A OneRoster 1.2 rostering service over a contract SIS database (see calpads.sources.oneroster).

OAuth2 client credentials (Basic client authentication, form grant_type and scope) at
/oauth/token; GET /ims/oneroster/rostering/v1p2/{schools,students,enrollments} with
limit/offset and X-Total-Count. Schools are orgs (identifier = CDS code), students are
users with a student role per enrollment school, and each school enrollment is an
enrollment in the school's homeroom class (OneRoster enrolls in classes).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import sqlalchemy as sa

from tests.integration.vendor_servers.common import Request, Response, VendorServer, read_tables

BASE = "/ims/oneroster/rostering/v1p2"


class OneRosterServer(VendorServer):
    def __init__(self, engine: sa.Engine, client_id: str, client_secret: str, max_limit: int = 100):
        super().__init__()
        t = read_tables(engine, {
            "schools": ["school_number", "alternate_school_number", "name"],
            "students": ["id", "student_number", "first_name", "last_name", "schoolid", "entrydate", "exitdate"],
            "reenrollments": ["id", "studentid", "schoolid", "entrydate", "exitdate"],
        })
        self.client_id, self.client_secret, self.max_limit = client_id, client_secret, max_limit
        self.tokens: set[str] = set()
        self.issued: list[str] = []
        ref = {"href": "", "type": "org"}
        self.collections: dict[str, tuple[str, list[dict[str, Any]]]] = {
            "schools": ("orgs", [{"sourcedId": f"org-{s['school_number']}", "status": "active", "name": s["name"],
                                  "type": "school", "identifier": s["alternate_school_number"] or ""}
                                 for s in t["schools"]]),
            "students": ("users", [{"sourcedId": f"stu-{s['id']}", "status": "active", "givenName": s["first_name"],
                                    "familyName": s["last_name"], "identifier": s["student_number"],
                                    "roles": [{"roleType": "primary", "role": "student",
                                               "org": {**ref, "sourcedId": f"org-{s['schoolid']}"}}]}
                                   for s in t["students"]]),
            "enrollments": ("enrollments", [
                {"sourcedId": f"enr-{kind}-{e['id']}", "status": "active", "role": "student",
                 "user": {"sourcedId": f"stu-{e.get('studentid') or e['id']}", "type": "user"},
                 "class": {"sourcedId": f"hr-{e['schoolid']}", "type": "class"},
                 "school": {"sourcedId": f"org-{e['schoolid']}", "type": "org"},
                 "beginDate": e["entrydate"], "endDate": e["exitdate"]}
                for kind, rows in (("s", t["students"]), ("r", t["reenrollments"])) for e in rows]),
        }

    def route(self, req: Request) -> Response:
        if req.path == "/oauth/token" and req.method == "POST":
            basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if req.headers.get("authorization") != f"Basic {basic}":
                return Response(401, {"error": "invalid_client"})
            if req.form().get("grant_type") != "client_credentials":
                return Response(400, {"error": "unsupported_grant_type"})
            token = uuid.uuid4().hex
            self.tokens.add(token)
            self.issued.append(token)
            return Response(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600,
                                  "scope": req.form().get("scope", "")})
        if req.headers.get("authorization", "")[7:] not in self.tokens:
            return Response(401, {"imsx_codeMajor": "failure", "imsx_description": "unauthorized"})
        name = req.path[len(BASE) + 1:] if req.path.startswith(BASE + "/") else ""
        if name not in self.collections:
            return Response(404, {"imsx_codeMajor": "failure"})
        key, rows = self.collections[name]
        limit = min(int(req.query.get("limit") or 100), self.max_limit)
        offset = int(req.query.get("offset") or 0)
        return Response(200, {key: rows[offset: offset + limit]}, {"X-Total-Count": str(len(rows))})
