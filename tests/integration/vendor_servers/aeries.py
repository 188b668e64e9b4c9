"""An Aeries API v5 over a contract SIS database (see calpads.sources.aeries_api for the API and the rules).

Implements: GET /api/v5/systeminfo (no certificate), /api/v5/schools[/{sc}], /schools/{sc}/calendar,
/schools/{sc}/students with StartingRecord/EndingRecord (inclusive, from 1), /schools/{sc}/enrollment/0
[/year/{yyyy}], /schools/{sc}/students/0/programs, /schools/{sc}/AbsenceCodes (Code, Description) and the
Student Attendance end point /schools/{sc}/attendance/0 with StartDate/EndDate (yyyyMMdd, inclusive): one
record per student with AttendanceDays [{SchoolCode, CalendarDate, AllDayAttendanceCode, Periods}], the days
with an all-day code only. Every other call needs the AERIES-CERT header
(401 without, 403 for an end point outside ``granted``). Records carry the documented fields only; dates
go out as 'YYYY-MM-DDT00:00:00', as Aeries sends them; errors as {"Message": ...}.

``as_aeries_district`` turns a copy of the demo district into what an Aeries district holds, seen through
the contract, so that the SQL source over it and the Aeries source over this server must agree. It is
written in SQL, independently of the Python rules of calpads.sources.aeries_api, so each checks the other.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from calpads.run_scope import current_academic_year
from tests.integration.vendor_servers.common import Request, Response, VendorServer, one_student_key, read_tables

API = "/api/v5"
NOT_AERIES = ("partnershipacademyid", "migrantstudentid", "prmarydisabilitycode", "distspedaccountability",
              "dwellingtype", "unaccompaniedyouth", "runawayyouth", "spedexitcode")


def as_aeries_district(engine: sa.Engine, range_start: str) -> None:
    """Re-shape a contract SIS (SQLite) in place into an Aeries district's data:
    - one student key: STUDENTS.ID = DCID = STUDENT_NUMBER, references included;
    - legal names always present (Aeries's FirstName/LastName), no legal gender, no exclusion flags;
    - attendance: one all-day code per student, school and day (Aeries's ATT holds one record a day: the
      first daily row is kept);
    - programs: the fields Aeries has (code, membership 1 or 3, dates), the school of the student's
      enrollment on max(start, range_start) (else the current school), id = <code><yyyymmdd>, no Title I
      services, no blank codes.
    """
    cols = ", ".join(f"NULL AS {c}" for c in NOT_AERIES)
    with engine.begin() as c:
        one_student_key(c)
        c.exec_driver_sql("UPDATE students SET state_excludefromreporting = 0")
        c.exec_driver_sql("INSERT INTO s_ca_stu_x (studentsdcid) SELECT dcid FROM students "
                          "WHERE dcid NOT IN (SELECT studentsdcid FROM s_ca_stu_x)")
        c.exec_driver_sql("UPDATE s_ca_stu_x SET legalgender = NULL, "
                          "legalfirstname = COALESCE(legalfirstname, (SELECT first_name FROM students s "
                          "WHERE s.dcid = s_ca_stu_x.studentsdcid)), "
                          "legallastname = COALESCE(legallastname, (SELECT last_name FROM students s "
                          "WHERE s.dcid = s_ca_stu_x.studentsdcid))")
        c.exec_driver_sql("DELETE FROM s_ca_calpads_studentservices_c")
        c.exec_driver_sql("DELETE FROM attendance WHERE att_mode_code = 'ATT_ModeDaily' AND id NOT IN ("
                          "SELECT MIN(id) FROM attendance WHERE att_mode_code = 'ATT_ModeDaily' "
                          "GROUP BY studentid, schoolid, att_date)")
        on = "MAX(COALESCE(p.programstartdate, :rs), :rs)"
        c.execute(sa.text(f"""
            CREATE TABLE programs_aeries AS SELECT DISTINCT
              CAST(p.programcode || REPLACE(COALESCE(p.programstartdate, '0000-00-00'), '-', '') AS INTEGER) AS id,
              p.studentsdcid,
              COALESCE((SELECT e.schoolid FROM (
                          SELECT id AS sid, schoolid, entrydate, exitdate FROM students UNION ALL
                          SELECT studentid, schoolid, entrydate, exitdate FROM reenrollments) e
                        WHERE e.sid = p.studentsdcid AND e.entrydate <= {on}
                          AND (e.exitdate IS NULL OR e.exitdate > {on})
                        ORDER BY e.entrydate DESC LIMIT 1),
                       (SELECT s.schoolid FROM students s WHERE s.id = p.studentsdcid)) AS schoolid,
              p.programcode,
              CASE WHEN p.programmembershipcode = '1' OR p.programstartdate IS NULL THEN '1' ELSE '3' END
                AS programmembershipcode,
              p.programstartdate,
              CASE WHEN p.programenddate = '' THEN NULL ELSE p.programenddate END AS programenddate,
              {cols}
            FROM s_ca_stu_calpadsprograms_c p WHERE p.programcode IS NOT NULL AND p.programcode <> ''
        """), {"rs": range_start})  # noqa: S608 - fixed column names
        c.exec_driver_sql("DROP TABLE s_ca_stu_calpadsprograms_c")
        c.exec_driver_sql("ALTER TABLE programs_aeries RENAME TO s_ca_stu_calpadsprograms_c")


def _dt(v: str | None) -> str | None:
    return None if v is None else f"{v}T00:00:00"


def _grade(v: str | None) -> int | None:
    return None if v is None else int(v)


def _iso(v: str | None) -> str | None:
    """yyyyMMdd (the Student Attendance filters) -> yyyy-MM-dd."""
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if v else None


def _year(iso: str) -> str:
    """The Aeries AcademicYear (yyyy of the first half) of a date."""
    return current_academic_year(date.fromisoformat(iso))[:4]


class AeriesServer(VendorServer):
    def __init__(self, engine: sa.Engine, certificate: str, granted: set[str] | None = None):
        super().__init__()
        self.certificate = certificate
        self.granted = granted   # None = every end point; else a set of "schools", "calendar", "students", ...
        # The enrollment history's ExitReasonCode: the SIS's EXITCODE (blank on a SIS without the column).
        insp = sa.inspect(engine)
        reenrollments = next(t for t in insp.get_table_names() if t.lower() == "reenrollments")
        exit_code = ["exitcode"] if "exitcode" in {c["name"].lower() for c in insp.get_columns(reenrollments)} else []
        t = read_tables(engine, {
            "prefs": ["id", "name", "value", "schoolid"],
            "schools": ["school_number", "name", "alternate_school_number", "state_excludefromreporting"],
            "calendar_day": ["id", "schoolid", "date_value", "insession"],
            "students": ["id", "state_studentnumber", "first_name", "last_name", "dob", "gender", "schoolid",
                         "entrydate", "exitdate", "state_excludefromreporting", "dcid", "grade_level", *exit_code],
            "reenrollments": ["id", "studentid", "schoolid", "entrydate", "exitdate", "state_excludefromreporting",
                              "grade_level", *exit_code],
            "attendance_code": ["id", "schoolid", "att_code", "description"],
            "attendance": ["id", "studentid", "schoolid", "att_date", "attendance_codeid", "att_mode_code"],
            "s_ca_stu_x": ["studentsdcid", "legalfirstname", "legallastname", "legalgender"],
            "s_ca_stu_calpadsprograms_c": ["id", "studentsdcid", "schoolid", "programcode", "programmembershipcode",
                                           "programstartdate", "programenddate"],
        })
        for s in t["students"]:
            assert s["id"] == s["dcid"], "serve a district made with as_aeries_district"
        lea = next((p["value"] or "" for p in t["prefs"] if p["name"] == "districtnumber" and p["schoolid"] == "0"), "")
        self.schools = [{"SchoolCode": int(s["school_number"]), "Name": s["name"], "StateCountyID": lea[:2],
                         "StateDistrictID": lea[2:], "StateSchoolID": s["alternate_school_number"],
                         "DoNotReport": s["state_excludefromreporting"] == "1"} for s in t["schools"]]
        self.calendar: dict[int, list[dict[str, Any]]] = {}
        for d in t["calendar_day"]:
            self.calendar.setdefault(int(d["schoolid"]), []).append({
                "SchoolCode": int(d["schoolid"]), "CalendarDate": _dt(d["date_value"]),
                "CalendarDayNumber": 0, "HolidayCode": "" if d["insession"] == "1" else "@"})
        legal = {x["studentsdcid"]: x for x in t["s_ca_stu_x"]}
        self.students: dict[int, list[dict[str, Any]]] = {}
        for s in t["students"]:
            x = legal[s["id"]]
            self.students.setdefault(int(s["schoolid"]), []).append({
                "StudentID": int(s["id"]), "SchoolCode": int(s["schoolid"]), "StudentNumber": 1,
                "StateStudentID": s["state_studentnumber"], "FirstName": x["legalfirstname"],
                "LastName": x["legallastname"],
                "FirstNameAlias": s["first_name"] if s["first_name"] != x["legalfirstname"] else "",
                "LastNameAlias": s["last_name"] if s["last_name"] != x["legallastname"] else "",
                "Gender": s["gender"], "Birthdate": _dt(s["dob"]), "InactiveStatusCode": "",
                "SchoolEnterDate": _dt(s["entrydate"]), "SchoolLeaveDate": _dt(s["exitdate"]),
                "Grade": _grade(s["grade_level"])})
        # Enrollment history holds every enrollment, the current one included.
        self.enrollment: dict[int, list[dict[str, Any]]] = {}
        for e in [{**s, "studentid": s["id"]} for s in t["students"]] + t["reenrollments"]:
            self.enrollment.setdefault(int(e["schoolid"]), []).append({
                "StudentID": int(e["studentid"]), "SchoolCode": int(e["schoolid"]),
                "AcademicYear": _year(e["entrydate"]), "EnterDate": _dt(e["entrydate"]),
                "LeaveDate": _dt(e["exitdate"]), "ExitReasonCode": e.get("exitcode") or "",
                "Grade": _grade(e["grade_level"])})
        self.absence_codes: dict[int, list[dict[str, Any]]] = {}
        code_of = {}
        for a in t["attendance_code"]:
            code_of[a["id"]] = a["att_code"]
            self.absence_codes.setdefault(int(a["schoolid"]), []).append({
                "SchoolCode": int(a["schoolid"]), "Code": a["att_code"], "Description": a["description"] or ""})
        # Student Attendance: school -> student -> [day]; daily rows whose code the school lists
        self.attendance: dict[int, dict[int, list[dict[str, Any]]]] = {}
        for a in t["attendance"]:
            if a["att_mode_code"] != "ATT_ModeDaily" or a["attendance_codeid"] not in code_of:
                continue
            self.attendance.setdefault(int(a["schoolid"]), {}).setdefault(int(a["studentid"]), []).append({
                "SchoolCode": int(a["schoolid"]), "CalendarDate": _dt(a["att_date"]),
                "AllDayAttendanceCode": code_of[a["attendance_codeid"]], "Periods": []})
        # Programs belong to the student: each school lists those of every student with a record there.
        schools_of: dict[int, set[int]] = {}
        for e in [{**s, "studentid": s["id"]} for s in t["students"]] + t["reenrollments"]:
            schools_of.setdefault(int(e["studentid"]), set()).add(int(e["schoolid"]))
        self.programs: dict[int, list[dict[str, Any]]] = {}
        for p in t["s_ca_stu_calpadsprograms_c"]:
            eligible_only = p["programmembershipcode"] == "1"
            start, end = _dt(p["programstartdate"]), _dt(p["programenddate"])
            rec = {"StudentID": int(p["studentsdcid"]), "ProgramCode": p["programcode"], "ProgramDescription": "",
                   "EligibilityStartDate": start, "EligibilityEndDate": end,
                   "ParticipationStartDate": None if eligible_only else start,
                   "ParticipationEndDate": None if eligible_only else end}
            for sc in schools_of.get(int(p["studentsdcid"]), ()):
                self.programs.setdefault(sc, []).append(rec)

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
        if area == "absence_codes":
            return Response(200, self.absence_codes.get(sc, []))
        if area == "attendance":
            first = _iso(req.query.get("StartDate")) or "0000-00-00"
            last = _iso(req.query.get("EndDate")) or "9999-99-99"
            out = []
            for sid, days in sorted(self.attendance.get(sc, {}).items()):
                inside = [d for d in days if first <= d["CalendarDate"][:10] <= last]
                if inside:
                    out.append({"StudentID": sid, "SchoolCode": sc, "AttendanceDays": inside})
            return Response(200, out)
        return Response(404, {"Message": "Not found"})

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
        if parts[2] == "attendance" and len(parts) == 4:
            return "attendance"
        if parts[2] == "AbsenceCodes" and len(parts) in (3, 4):
            return "absence_codes"
        return None
