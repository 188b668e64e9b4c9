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

from tests.integration.vendor_servers.common import Request, Response, VendorServer, one_student_key, read_tables

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


def as_oneroster_district(engine: sa.Engine) -> None:
    """Re-shape a contract SIS (SQLite) in place into what a OneRoster district plus its supplementary files
    hold, seen through the contract (written in SQL, apart from calpads.sources.oneroster's Python rules):
    one student key (STUDENTS.ID = DCID = STUDENT_NUMBER, references included), no per-enrollment
    exclusion flag, and only attendance rows whose code the district's code table has."""
    with engine.begin() as c:
        one_student_key(c)
        c.exec_driver_sql("DELETE FROM attendance WHERE attendance_codeid NOT IN (SELECT id FROM attendance_code)")


SUPPLEMENTARY_SQL = {
    "schools.csv": "SELECT school_number, alternate_school_number, name, subdistrict, state_excludefromreporting "
                   "FROM schools",
    "students.csv": "SELECT s.student_number, s.state_studentnumber, s.dob, s.gender, x.legalfirstname, "
                    "x.legallastname, x.legalgender, s.state_excludefromreporting FROM students s "
                    "LEFT JOIN s_ca_stu_x x ON x.studentsdcid = s.dcid",
    "enrollment_codes.csv": "SELECT student_number, schoolid AS school_number, entrydate, grade_level, "
                            "enrollmentstatus, exitcode, completionstatus, receiver_school, uccsu_reqs_met "
                            "FROM students UNION ALL SELECT s.student_number, r.schoolid, r.entrydate, "
                            "r.grade_level, r.enrollmentstatus, r.exitcode, r.completionstatus, r.receiver_school, "
                            "r.uccsu_reqs_met FROM reenrollments r JOIN students s ON s.id = r.studentid",
    "calendar_day.csv": "SELECT schoolid, date_value, insession FROM calendar_day",
    "attendance_code.csv": "SELECT id, schoolid, att_code, presence_status_cd, calpads_category "
                           "FROM attendance_code",
    "attendance.csv": "SELECT id, studentid, schoolid, att_date, attendance_codeid, att_mode_code FROM attendance",
}


def write_supplementary(engine: sa.Engine, folder: Any) -> None:
    """The district's supplementary files, exported from its SIS as a district would (plain SQL + csv)."""
    import csv
    from pathlib import Path

    from tests.integration.vendor_servers.common import text

    Path(folder).mkdir(parents=True, exist_ok=True)
    with engine.connect() as c:
        for name, sql in SUPPLEMENTARY_SQL.items():
            result = c.exec_driver_sql(sql)
            with open(Path(folder) / name, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(list(result.keys()))
                w.writerows([["" if v is None else text(v) for v in row] for row in result])
