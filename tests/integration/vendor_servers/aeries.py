"""An Aeries API v5 over a contract SIS database (see calpads.sources.aeries_api for the contract and sources).

Implements: GET /api/v5/systeminfo (no certificate), /api/v5/schools[/{sc}], /schools/{sc}/calendar,
/schools/{sc}/students with StartingRecord/EndingRecord (inclusive, from 1), /schools/{sc}/enrollment/0
[/year/{yyyy}], /schools/{sc}/students/0/programs. Every other call needs the AERIES-CERT header
(401 without, 403 for an end point outside ``granted``). Dates go out as 'YYYY-MM-DDT00:00:00', as
Aeries sends them; errors as {"Message": ...}.

Aeries keys a student by one number, the StudentID, which is also the Local Student ID. A contract
district whose STUDENTS.ID, DCID and STUDENT_NUMBER differ cannot be said in Aeries's words without
losing one of them: ``rekey_as_aeries`` turns a copy of the demo district into the shape an Aeries
district has (STUDENTS.ID = DCID = STUDENT_NUMBER), which this server then serves.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from tests.integration.vendor_servers.common import Request, Response, VendorServer, read_tables

API = "/api/v5"


def rekey_as_aeries(engine: sa.Engine) -> None:
    """Re-key a contract SIS in place so that STUDENTS.ID = DCID = STUDENT_NUMBER (numeric), references included."""
    by_id = "(SELECT CAST(s.student_number AS INTEGER) FROM students s WHERE s.id = {t}.studentid)"
    by_dcid = "(SELECT CAST(s.student_number AS INTEGER) FROM students s WHERE s.dcid = {t}.studentsdcid)"
    with engine.begin() as c:
        for t in ("reenrollments", "attendance"):
            c.exec_driver_sql(f"UPDATE {t} SET studentid = {by_id.format(t=t)}")  # noqa: S608 - fixed names
        for t in ("s_ca_stu_x", "s_ca_stu_calpadsprograms_c", "s_ca_calpads_studentservices_c"):
            c.exec_driver_sql(f"UPDATE {t} SET studentsdcid = {by_dcid.format(t=t)}")  # noqa: S608
        c.exec_driver_sql("UPDATE students SET id = CAST(student_number AS INTEGER), "
                          "dcid = CAST(student_number AS INTEGER)")


def _dt(v: str | None) -> str | None:
    return None if v is None else f"{v}T00:00:00"


def _year(iso: str) -> int:
    d = date.fromisoformat(iso)
    return d.year if d.month >= 7 else d.year - 1


class AeriesServer(VendorServer):
    def __init__(self, engine: sa.Engine, certificate: str, granted: set[str] | None = None):
        super().__init__()
        self.certificate = certificate
        self.granted = granted   # None = every end point; else a set of "schools", "calendar", "students", ...
        t = read_tables(engine, {
            "prefs": ["id", "name", "value", "schoolid"],
            "schools": ["school_number", "name", "alternate_school_number", "state_excludefromreporting"],
            "calendar_day": ["id", "schoolid", "date_value", "insession"],
            "students": ["id", "state_studentnumber", "first_name", "last_name", "dob", "gender", "schoolid",
                         "entrydate", "exitdate", "state_excludefromreporting", "dcid"],
            "reenrollments": ["id", "studentid", "schoolid", "entrydate", "exitdate", "state_excludefromreporting"],
            "s_ca_stu_x": ["studentsdcid", "legalfirstname", "legallastname", "legalgender"],
            "s_ca_stu_calpadsprograms_c": ["id", "studentsdcid", "schoolid", "programcode", "programmembershipcode",
                                           "programstartdate", "programenddate", "partnershipacademyid",
                                           "migrantstudentid", "prmarydisabilitycode", "distspedaccountability",
                                           "dwellingtype", "unaccompaniedyouth", "runawayyouth", "spedexitcode"],
            "s_ca_calpads_studentservices_c": ["id", "studentsdcid", "schoolid", "servicecode", "servicedate"],
        })
        for s in t["students"]:
            assert s["id"] == s["dcid"], "serve a district re-keyed with rekey_as_aeries"
        lea = next((p["value"] or "" for p in t["prefs"] if p["name"] == "districtnumber" and p["schoolid"] == "0"), "")
        self.schools = [{"SchoolCode": int(s["school_number"]), "Name": s["name"], "StateCountyID": lea[:2],
                         "StateDistrictID": lea[2:], "StateSchoolID": s["alternate_school_number"],
                         "DoNotReport": s["state_excludefromreporting"] == "1"} for s in t["schools"]]
        self.calendar: dict[int, list[dict[str, Any]]] = {}
        for d in t["calendar_day"]:
            self.calendar.setdefault(int(d["schoolid"]), []).append({
                "SchoolCode": int(d["schoolid"]), "CalendarDate": _dt(d["date_value"]),
                "Holiday": "" if d["insession"] == "1" else "H"})
        legal = {x["studentsdcid"]: x for x in t["s_ca_stu_x"]}
        self.students: dict[int, list[dict[str, Any]]] = {}
        for s in t["students"]:
            x = legal.get(s["id"], {})
            self.students.setdefault(int(s["schoolid"]), []).append({
                "StudentID": int(s["id"]), "SchoolCode": int(s["schoolid"]), "StudentNumber": 1,
                "StateStudentID": s["state_studentnumber"], "FirstName": s["first_name"], "LastName": s["last_name"],
                "Gender": s["gender"], "Birthdate": _dt(s["dob"]), "SchoolEnterDate": _dt(s["entrydate"]),
                "SchoolLeaveDate": _dt(s["exitdate"]),
                "ExcludeFromStateReporting": s["state_excludefromreporting"] == "1",
                "LegalFirstName": x.get("legalfirstname"), "LegalLastName": x.get("legallastname"),
                "LegalGender": x.get("legalgender")})
        # Enrollment history holds every enrollment, the current one included.
        self.enrollment: dict[int, list[dict[str, Any]]] = {}
        for e in [{**s, "studentid": s["id"]} for s in t["students"]] + t["reenrollments"]:
            self.enrollment.setdefault(int(e["schoolid"]), []).append({
                "StudentID": int(e["studentid"]), "SchoolCode": int(e["schoolid"]),
                "AcademicYear": str(_year(e["entrydate"])), "EnterDate": _dt(e["entrydate"]),
                "LeaveDate": _dt(e["exitdate"]), "ExitReasonCode": "",
                "ExcludeFromStateReporting": e["state_excludefromreporting"] == "1"})
        self.programs: dict[int, list[dict[str, Any]]] = {}
        ext = {"programmembershipcode": "MembershipCode", "partnershipacademyid": "PartnershipAcademyID",
               "migrantstudentid": "MigrantStudentID", "prmarydisabilitycode": "PrimaryDisabilityCode",
               "distspedaccountability": "DistrictOfSpecialEducationAccountability", "dwellingtype": "DwellingType",
               "unaccompaniedyouth": "UnaccompaniedYouth", "runawayyouth": "RunawayYouth",
               "spedexitcode": "SpecialEducationExitCode"}
        for p in t["s_ca_stu_calpadsprograms_c"]:
            eligible_only = p["programmembershipcode"] == "1"
            # a blank ('') end date is not a date Aeries can hold: it goes out as null
            start, end = _dt(p["programstartdate"]), (_dt(p["programenddate"]) if p["programenddate"] else None)
            self.programs.setdefault(int(p["schoolid"]), []).append({
                "StudentID": int(p["studentsdcid"]), "SequenceNumber": int(p["id"]), "ProgramCode": p["programcode"],
                "EligibilityStartDate": start, "EligibilityEndDate": end,
                "ParticipationStartDate": None if eligible_only else start,
                "ParticipationEndDate": None if eligible_only else end,
                "ExtendedProperties": [{"Name": n, "Value": p[c]} for c, n in ext.items()]})
        for v in t["s_ca_calpads_studentservices_c"]:
            self.programs.setdefault(int(v["schoolid"]), []).append({
                "StudentID": int(v["studentsdcid"]), "SequenceNumber": int(v["id"]), "ProgramCode": "122",
                "EligibilityStartDate": None, "EligibilityEndDate": None,
                "ParticipationStartDate": _dt(v["servicedate"]), "ParticipationEndDate": None,
                "ExtendedProperties": [{"Name": "ServiceCode", "Value": v["servicecode"]}]})

    def route(self, req: Request) -> Response:
        if req.method != "GET" or not req.path.startswith(API):
            return Response(404, {"Message": "Not found"})
        parts = req.path[len(API) + 1:].split("/")
        if parts == ["systeminfo"]:
            return Response(200, {"AeriesVersion": "10.25.1.1", "DatabaseYear": "2025",
                                  "AvailableDatabaseYears": ["2024", "2025"], "LocalTimeZoneName": "Pacific",
                                  "CurrentDateTime": "2026-04-10T08:00:00"})
        if req.headers.get("aeries-cert") != self.certificate:
            return Response(401, {"Message": "Invalid certificate."})
        if parts[0] != "schools":
            return Response(404, {"Message": "Not found"})
        area = self._area(parts)
        if area is None:
            return Response(404, {"Message": "Not found"})
        if self.granted is not None and area not in self.granted:
            return Response(403, {"Message": f"The certificate has no access to {area}."})
        if len(parts) == 1:
            return Response(200, self.schools)
        sc = int(parts[1])
        if len(parts) == 2:
            return Response(200, [s for s in self.schools if s["SchoolCode"] == sc])
        if area == "calendar":
            return Response(200, self.calendar.get(sc, []))
        if area == "students":
            rows = self.students.get(sc, [])
            first = int(req.query.get("StartingRecord") or 1)
            last = int(req.query.get("EndingRecord") or len(rows))
            return Response(200, rows[first - 1:last])
        if area == "enrollment":
            rows = self.enrollment.get(sc, [])
            if len(parts) == 6:
                rows = [r for r in rows if r["AcademicYear"] == parts[5]]
            return Response(200, rows)
        if area == "programs":
            return Response(200, self.programs.get(sc, []))
        return Response(200, [])   # attendance: not served (the SPRG pull does not read it)

    @staticmethod
    def _area(parts: list[str]) -> str | None:
        if len(parts) <= 2:
            return "schools"
        if parts[2] == "calendar" and len(parts) == 3:
            return "calendar"
        if parts[2] == "students" and len(parts) == 3:
            return "students"
        if parts[2] == "students" and parts[3:] == ["0", "programs"]:
            return "programs"
        if parts[2] == "enrollment" and len(parts) in (4, 6):
            return "enrollment"
        if parts[2] == "attendance":
            return "attendance"
        return None
