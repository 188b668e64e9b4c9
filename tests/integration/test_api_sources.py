"""The SIS API sources against local vendor servers serving the demo district's SIS database.

Each API source must produce the very SprgPull of the SQL source (same rows,
columns and dtypes after a canonical sort), survive 429/5xx/expiring tokens,
resume a failed pull from its page checkpoint, and never log a secret or
student data.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.extracts.common import program_set
from calpads.layouts import load_layout
from calpads.run_scope import RunScope
from calpads.sources.api_common import ApiSourceError, MissingSourceData, check_data_flows
from calpads.sources.api_sources import pull_sprg_api
from calpads.sources.sprg_frames import canonical, client_sprg_pull
from calpads.sources.sql_sis import SprgPull, pull_sprg
from tests.integration.vendor_servers.aeries import AeriesServer
from tests.integration.vendor_servers.common import Fault
from tests.integration.vendor_servers.powerschool import STUDENTS_PQ, PowerSchoolServer

FRAMES = ("schools", "scoped_schools", "calendar", "enrollments", "students", "programs", "services",
          "enrolled_students")
CLIENT_ID, CLIENT_SECRET = "calpads-client-7f3e", "s3cr3t-Zq81-do-not-log"
FAST_RETRIES = {"max_attempts": 4, "backoff_base": 0.02, "backoff_cap": 0.2, "read_timeout": 10, "connect_timeout": 5}


@pytest.fixture(scope="module")
def sis(tmp_path_factory) -> sa.Engine:
    from calpads.demo.generator import generate_district

    path = tmp_path_factory.mktemp("sis") / "sis.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    generate_district(engine, students=600, seed=11, dirty=0.05, academic_year="2025-2026", log=lambda m: None)
    return engine


def scope_of(**params) -> RunScope:
    return RunScope.from_params("SPRG", {"academic_year": "2025-2026", **params}, date(2026, 6, 30))


SCOPES = {
    "eoy2": {},
    "fall1": {"submission": "fall1"},
    "custom-range": {"submission": "custom", "programs": ["122", "144", "181", "191"], "start_date": "2025-10-01",
                     "end_date": "2026-01-15"},
}


def assert_same_pull(a: SprgPull, b: SprgPull) -> None:
    assert a.lea == b.lea
    for name in FRAMES:
        left, right = canonical(getattr(a, name)), canonical(getattr(b, name))
        assert list(left.columns) == list(right.columns), name
        pd.testing.assert_frame_equal(left, right, check_dtype=True, obj=name)


def set_conn(monkeypatch, conn_id: str, conn_type: str, host: str, login: str | None, password: str,
             **extra) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": conn_type, "host": host, "login": login, "password": password, "extra": extra}))


# -- PowerSchool -------------------------------------------------------------------------------


@pytest.fixture
def ps_server(sis) -> Iterator[PowerSchoolServer]:
    server = PowerSchoolServer(sis, CLIENT_ID, CLIENT_SECRET, max_page_size=100,
                               writable={"S_CA_STU_CALPADSPROGRAMS_C"})
    with server:
        yield server


@pytest.fixture
def ps_conn(ps_server, monkeypatch) -> str:
    set_conn(monkeypatch, "ps_test", "calpads_powerschool", ps_server.url, CLIENT_ID, CLIENT_SECRET,
             page_size=50, **FAST_RETRIES)
    return "ps_test"


@pytest.mark.parametrize("scope_name", list(SCOPES))
def test_powerschool_pull_equals_sql_pull(sis, ps_server, ps_conn, tmp_path, scope_name):
    scope = scope_of(**SCOPES[scope_name])
    codes = program_set(load_layout("SPRG"), scope)
    api = pull_sprg_api("powerschool_api", ps_conn, scope, codes, tmp_path)
    assert_same_pull(pull_sprg(sis, scope, codes), api)
    assert len(api.programs) > 0 and len(api.students) > 0


def test_powerschool_honours_the_plugin_page_size(ps_server, ps_conn, tmp_path, monkeypatch):
    # The connection asks for 500 a page; the plugin allows 100 (metadata): every page request uses 100.
    set_conn(monkeypatch, "ps_big", "calpads_powerschool", ps_server.url, CLIENT_ID, CLIENT_SECRET,
             page_size=500, **FAST_RETRIES)
    scope = scope_of()
    pull_sprg_api("powerschool_api", "ps_big", scope, program_set(load_layout("SPRG"), scope), tmp_path)
    sizes = {e.query.get("pagesize") for e in ps_server.requests("/ws/schema/table/") if "pagesize" in e.query}
    assert sizes == {"100"}
    assert not ps_server.requests(status=400)


def _data_pages(server: PowerSchoolServer, status: int | None = 200) -> list[tuple[str, int]]:
    return [(e.path.rsplit("/", 1)[-1], int(e.query["page"])) for e in server.requests("/ws/schema/table/")
            if "page" in e.query and (status is None or e.status == status)]


def test_powerschool_survives_429_500_and_an_expiring_token(sis, ps_server, ps_conn, tmp_path, caplog):
    ps_server.faults += [
        Fault("/ws/schema/table/students", status=429, page=2, retry_after="1"),
        Fault("/ws/schema/table/s_ca_stu_calpadsprograms_c", status=503, page=1, times=2),
        Fault("/ws/schema/table/calendar_day/count", status=500),
    ]
    ps_server.token_max_uses = 25  # the token dies mid-pull, several times
    scope = scope_of()
    codes = program_set(load_layout("SPRG"), scope)
    caplog.set_level(logging.DEBUG)
    from calpads.sources.api_sources import client_for, get_connection

    client = client_for("powerschool_api", get_connection(ps_conn))
    api = client_sprg_pull(client, scope, codes, tmp_path)
    assert_same_pull(pull_sprg(sis, scope, codes), api)
    assert all(f.times == 0 for f in ps_server.faults)
    # Retry-After: 1 was honoured; 2 + 1 retries; every 401 led to exactly one new token.
    assert client.http.stats.waited_seconds >= 1.0
    assert client.http.stats.retries == 4
    unauthorised = len(ps_server.requests(status=401))
    assert unauthorised >= 2 and client.token.fetches == unauthorised + 1 == len(ps_server.issued)
    # the 429'd page was asked twice, every other page once
    pages = _data_pages(ps_server, status=None)
    assert pages.count(("students", 2)) >= 2
    client.close()


def test_powerschool_resumes_from_the_checkpoint(sis, ps_server, ps_conn, tmp_path):
    scope = scope_of()
    codes = program_set(load_layout("SPRG"), scope)
    # Page 4 of STUDENTS keeps failing (more often than the retries allow): the pull fails.
    ps_server.faults.append(Fault("/ws/schema/table/students", status=500, page=4, times=100))
    with pytest.raises(ApiSourceError, match="kept failing"):
        pull_sprg_api("powerschool_api", ps_conn, scope, codes, tmp_path)
    first = set(_data_pages(ps_server))
    assert ("students", 3) in first and ("students", 4) not in first
    # The task retry: the SIS is healthy again. Only page 4 onwards is fetched.
    ps_server.faults.clear()
    ps_server.clear_log()
    api = pull_sprg_api("powerschool_api", ps_conn, scope, codes, tmp_path)
    second = _data_pages(ps_server)
    assert first.isdisjoint(second), sorted(first & set(second))
    assert min(p for t, p in second if t == "students") == 4
    assert_same_pull(pull_sprg(sis, scope, codes), api)
    # and a third run fetches no page at all
    ps_server.clear_log()
    pull_sprg_api("powerschool_api", ps_conn, scope, codes, tmp_path)
    assert _data_pages(ps_server) == []


def test_powerschool_powerquery_pages(sis, ps_server, ps_conn, tmp_path):
    from calpads.sources.api_sources import client_for, get_connection

    client = client_for("powerschool_api", get_connection(ps_conn))
    rows = client.fetch_powerquery(STUDENTS_PQ, ["students.id", "students.dcid", "s_ca_stu_x.legallastname"],
                                   tmp_path)
    with sis.connect() as c:
        n = c.exec_driver_sql("SELECT COUNT(*) FROM STUDENTS").scalar()
        with_legal = c.exec_driver_sql("SELECT COUNT(*) FROM S_CA_STU_X WHERE LEGALLASTNAME IS NOT NULL").scalar()
    assert len(rows) == n and len({r["students.id"] for r in rows}) == n
    assert sum(r["s_ca_stu_x.legallastname"] is not None for r in rows) == with_legal
    posts = ps_server.requests(f"/ws/schema/query/{STUDENTS_PQ}", method="POST")
    assert len(posts) == 1 + -(-n // 50)  # count + pages of 50
    client.close()


def test_powerschool_data_flows_in_the_integration_teams_words(sis, monkeypatch):
    server = PowerSchoolServer(sis, CLIENT_ID, CLIENT_SECRET,
                               granted={"PREFS", "SCHOOLS", "CALENDAR_DAY", "STUDENTS", "REENROLLMENTS", "S_CA_STU_X",
                                        "S_CA_STU_CALPADSPROGRAMS_C", "S_CA_CALPADS_STUDENTSERVICES_C",
                                        "ATTENDANCE_CODE"})
    with server:
        set_conn(monkeypatch, "ps_flows", "calpads_powerschool", server.url, CLIENT_ID, CLIENT_SECRET, **FAST_RETRIES)
        from calpads_airflow.hooks import PowerSchoolHook

        hook = PowerSchoolHook("ps_flows")
        checks = check_data_flows(hook, ["read_enrollment", "read_attendance", "read_programs",
                                         "write_participation"])
    by_resource = {c.resource: c for c in checks if c.flow != "write_participation"}
    assert all(by_resource[t].granted for t in ("STUDENTS", "REENROLLMENTS", "S_CA_STU_CALPADSPROGRAMS_C"))
    assert by_resource["ATTENDANCE"].granted is False
    assert by_resource["ATTENDANCE"].message == (
        "The pipeline cannot read the attendance table (ATTENDANCE): ask district IT to grant the plugin read "
        "access to ATTENDANCE")
    assert by_resource["ATTENDANCE_CODE"].granted is True
    write = [c for c in checks if c.flow == "write_participation"]
    assert len(write) == 1 and write[0].granted is False
    assert "write access to S_CA_STU_CALPADSPROGRAMS_C" in write[0].message


def test_powerschool_hook_connection_and_pool(ps_server, ps_conn, monkeypatch):
    from calpads_airflow.hooks import PowerSchoolHook, get_provider_info

    hook = PowerSchoolHook(ps_conn)
    ok, message = hook.test_connection()
    assert ok and "page size 50" in message
    assert hook.pool == "sis_powerschool"
    set_conn(monkeypatch, "ps_wrong", "calpads_powerschool", ps_server.url, CLIENT_ID, "not-the-secret",
             **FAST_RETRIES)
    ok, message = PowerSchoolHook("ps_wrong").test_connection()
    assert not ok and "client ID and secret" in message and "not-the-secret" not in message
    info = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert info["calpads_powerschool"]["ui-field-behaviour"]["relabeling"]["login"] == "Client ID"
    assert info["calpads_powerschool"]["ui-field-behaviour"]["hidden-fields"] == ["schema", "port", "extra"]


# -- no secrets, no student data in logs ----------------------------------------------------------


def _student_words(engine: sa.Engine) -> set[str]:
    words: set[str] = set()
    with engine.connect() as c:
        for row in c.exec_driver_sql("SELECT FIRST_NAME, LAST_NAME, DOB, STATE_STUDENTNUMBER FROM STUDENTS"):
            words.update(str(v) for v in row if v)
        for row in c.exec_driver_sql("SELECT LEGALFIRSTNAME, LEGALLASTNAME FROM S_CA_STU_X"):
            words.update(str(v) for v in row if v)
    return {w for w in words if len(w) >= 3}


def test_no_secret_or_student_data_in_logs(sis, ps_server, ps_conn, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    ps_server.faults += [Fault("/ws/schema/table/students", status=500, page=2),
                         Fault("/ws/schema/table/prefs", status=429, retry_after="0")]
    ps_server.token_max_uses = 30
    scope = scope_of()
    pull_sprg_api("powerschool_api", ps_conn, scope, program_set(load_layout("SPRG"), scope), tmp_path)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "the pull logs its requests"
    secrets = {CLIENT_SECRET, *ps_server.issued}
    assert not [s for s in secrets if s in text]
    tokens = set(re.findall(r"[A-Za-z0-9'-]+", text))
    leaked = tokens & _student_words(sis)
    assert not leaked, sorted(leaked)[:5]


# -- OneRoster -------------------------------------------------------------------------------------


def test_oneroster_roster_pages_and_sprg_fails_in_plain_words(sis, tmp_path, monkeypatch):
    from calpads.sources.api_sources import client_for, get_connection
    from calpads.sources.oneroster import SPRG_GAP
    from tests.integration.vendor_servers.oneroster import OneRosterServer

    with OneRosterServer(sis, CLIENT_ID, CLIENT_SECRET, max_limit=100) as server:
        set_conn(monkeypatch, "or_test", "calpads_oneroster", server.url, CLIENT_ID, CLIENT_SECRET,
                 page_size=100, token_url=f"{server.url}/oauth/token", **FAST_RETRIES)
        server.faults.append(Fault("/students", status=429, retry_after="0", page=None))
        client = client_for("oneroster", get_connection("or_test"))
        roster = client.pull_roster(tmp_path)
        with sis.connect() as c:
            n_students = c.exec_driver_sql("SELECT COUNT(*) FROM STUDENTS").scalar()
            n_enr = n_students + c.exec_driver_sql("SELECT COUNT(*) FROM REENROLLMENTS").scalar()
        assert len(roster["students"]) == n_students and len(roster["enrollments"]) == n_enr
        assert {e["user"] for e in roster["enrollments"]} <= {s["sourcedId"] for s in roster["students"]}
        offsets = [int(e.query["offset"]) for e in server.requests("/students", status=200)]
        # paged up to X-Total-Count, each page asked once (the first one too)
        assert offsets == list(range(0, n_students, 100)) and len(offsets) == -(-n_students // 100)
        # the same school enrollments as the SIS database holds (student, CDS school code, dates)
        sql = ("SELECT s.student_number, k.alternate_school_number, {t}.entrydate, {t}.exitdate FROM {t} "
               "JOIN students s ON s.id = {t}.{key} JOIN schools k ON k.school_number = {t}.schoolid")
        with sis.connect() as c:
            expected = [tuple(r) for t, key in (("students", "id"), ("reenrollments", "studentid"))
                        for r in c.exec_driver_sql(sql.format(t=t, key=key))]
        got = [(e["local_student_id"], e["school_code"], e["entrydate"], e["exitdate"])
               for e in client.pull_enrollments(tmp_path)]
        assert sorted(got, key=str) == sorted(expected, key=str) and len(got) == n_enr
        client.close()
        checks = {c.flow: c for c in check_data_flows(client, ["read_enrollment", "read_programs"])}
        assert checks["read_enrollment"].granted and checks["read_programs"].granted is False
        scope = scope_of()
        with pytest.raises(MissingSourceData) as err:
            pull_sprg_api("oneroster", "or_test", scope, program_set(load_layout("SPRG"), scope), tmp_path)
        assert str(err.value) == SPRG_GAP and "Education Program Code (13)" in SPRG_GAP


# -- Aeries ----------------------------------------------------------------------------------------

CERT = "477abe9e7d27439681d62f4e0de1f5e1-do-not-log"


@pytest.fixture(scope="module")
def aeries_for(sis, tmp_path_factory) -> Callable[[str], sa.Engine]:
    """The demo district as an Aeries district holds it (vendor_servers.aeries.as_aeries_district), for a
    report range starting on the given day (the programs' school of attendance depends on it)."""
    from tests.integration.vendor_servers.aeries import as_aeries_district

    made: dict[str, sa.Engine] = {}

    def make(range_start: str) -> sa.Engine:
        if range_start not in made:
            path = tmp_path_factory.mktemp("aeries") / "sis.db"
            shutil.copy(sis.url.database, path)
            made[range_start] = sa.create_engine(f"sqlite:///{path}")
            as_aeries_district(made[range_start], range_start)
        return made[range_start]

    return make


@pytest.fixture(scope="module")
def aeries_sis(aeries_for) -> sa.Engine:
    return aeries_for("2025-07-01")   # the EOY and Fall 1 report ranges start on July 1


@pytest.fixture
def ae_server(aeries_sis) -> Iterator[AeriesServer]:
    with AeriesServer(aeries_sis, CERT) as server:
        yield server


SUBDISTRICTS = {"100": "North", "110": "South", "120": "East", "130": "West", "140": "North", "150": "South",
                "160": "East", "170": "West", "180": "North", "190": "North"}   # the demo's, as IT would list them


@pytest.fixture
def ae_conn(ae_server, monkeypatch) -> str:
    set_conn(monkeypatch, "ae_test", "calpads_aeries", f"{ae_server.url}/api", None, CERT, page_size=40,
             subdistricts=SUBDISTRICTS, **FAST_RETRIES)
    return "ae_test"


def test_the_aeries_shaped_district_keeps_every_student_and_program(sis, aeries_sis):
    q = ("SELECT DISTINCT s.student_number, p.programcode, p.programstartdate FROM s_ca_stu_calpadsprograms_c p "
         "JOIN students s ON s.dcid = p.studentsdcid")
    with sis.connect() as a, aeries_sis.connect() as b:
        assert sorted(a.exec_driver_sql(q).fetchall()) == sorted(b.exec_driver_sql(q).fetchall())
        assert b.exec_driver_sql("SELECT COUNT(*) FROM students WHERE id <> dcid OR "
                                 "CAST(id AS TEXT) <> student_number").scalar() == 0
        assert b.exec_driver_sql("SELECT COUNT(*) FROM s_ca_calpads_studentservices_c").scalar() == 0


@pytest.mark.parametrize("scope_name", list(SCOPES))
def test_aeries_pull_equals_sql_pull(aeries_for, monkeypatch, tmp_path, scope_name):
    scope = scope_of(**SCOPES[scope_name])
    codes = program_set(load_layout("SPRG"), scope)
    district = aeries_for(scope.start_date.isoformat())
    with AeriesServer(district, CERT) as ae_server:
        set_conn(monkeypatch, "ae_scope", "calpads_aeries", f"{ae_server.url}/api", None, CERT, page_size=40,
                 subdistricts=SUBDISTRICTS, **FAST_RETRIES)
        api = pull_sprg_api("aeries_api", "ae_scope", scope, codes, tmp_path)
    assert_same_pull(pull_sprg(district, scope, codes), api)
    assert len(api.programs) > 0 and len(api.students) > 0
    # A transfer student's programs are listed by each of the student's schools (the pull reads them once).
    listed = [p for v in ae_server.programs.values() for p in v]
    assert len(listed) > len({json.dumps(p, sort_keys=True) for p in listed})
    # students are paged by record count, 40 at a time from record 1, until a short page
    starts = [int(e.query["StartingRecord"]) for e in ae_server.requests("/schools/100/students")
              if e.path.endswith("/students")]
    n = len(ae_server.students[100])
    assert n > 40 and starts == [1 + 40 * k for k in range(n // 40 + 1)]
    assert {e.query.get("DatabaseYear") for e in ae_server.log} == {"2025"}   # the run's school-year database


def test_aeries_survives_faults_and_resumes_from_the_checkpoint(aeries_sis, ae_server, ae_conn, tmp_path):
    scope = scope_of()
    codes = program_set(load_layout("SPRG"), scope)
    ae_server.faults += [Fault("/schools/100/students", status=429, retry_after="1", page=41,
                               page_param="StartingRecord"),
                         Fault("/schools/110/students/0/programs", status=503, times=2)]
    from calpads.sources.api_sources import client_for, get_connection

    client = client_for("aeries_api", get_connection(ae_conn))
    assert_same_pull(pull_sprg(aeries_sis, scope, codes), client_sprg_pull(client, scope, codes, tmp_path / "a"))
    assert client.http.stats.retries == 3 and client.http.stats.waited_seconds >= 1.0
    client.close()
    # School 150's programs keep failing: the pull stops; the retry fetches only what is missing.
    ae_server.faults = [Fault("/schools/150/students/0/programs", status=500, times=100)]
    ae_server.clear_log()
    with pytest.raises(ApiSourceError, match="kept failing"):
        pull_sprg_api("aeries_api", ae_conn, scope, codes, tmp_path / "b")
    first = {(e.path, e.query.get("StartingRecord")) for e in ae_server.log if e.status == 200}
    ae_server.faults.clear()
    ae_server.clear_log()
    api = pull_sprg_api("aeries_api", ae_conn, scope, codes, tmp_path / "b")
    second = [(e.path, e.query.get("StartingRecord")) for e in ae_server.log]
    assert ("/api/v5/schools/150/students/0/programs", None) in second
    assert first.isdisjoint(second), sorted(first & set(second))[:3]
    assert_same_pull(pull_sprg(aeries_sis, scope, codes), api)


def test_aeries_connection_and_data_flows_in_the_integration_teams_words(aeries_sis, ae_server, ae_conn,
                                                                          monkeypatch):
    from calpads_airflow.hooks import AeriesHook

    ok, message = AeriesHook(ae_conn).test_connection()
    assert ok and message == "Connected to Aeries 10.25.1.1; 10 schools visible."
    set_conn(monkeypatch, "ae_wrong", "calpads_aeries", ae_server.url, None, "not-the-cert", **FAST_RETRIES)
    ok, message = AeriesHook("ae_wrong").test_connection()
    assert not ok and "refused the certificate" in message and "not-the-cert" not in message
    assert AeriesHook(ae_conn).pool == "sis_aeries"
    with AeriesServer(aeries_sis, CERT, granted={"schools", "calendar", "students", "programs"}) as limited:
        set_conn(monkeypatch, "ae_limited", "calpads_aeries", limited.url, None, CERT, **FAST_RETRIES)
        checks = check_data_flows(AeriesHook("ae_limited"), ["read_enrollment", "read_programs",
                                                               "write_participation"])
        from calpads.health.checks import flows_api

        health = {r.check: r.ok for r in flows_api(AeriesHook("ae_limited"), ["read_enrollment"])}
    assert health == {"flow_read_enrollment_school_information": True, "flow_read_enrollment_school_calendar": True,
                      "flow_read_enrollment_student_data": True, "flow_read_enrollment_enrollment_history": False}
    by_area = {c.resource: c for c in checks}
    assert by_area["Student Data"].granted and by_area["Student Programs"].granted is not False
    assert by_area["Enrollment History"].granted is False
    assert by_area["Enrollment History"].message == (
        "The pipeline cannot read the enrollment history (the \"Enrollment History\" security area): ask district "
        "IT to grant the Aeries vendor certificate read access to the \"Enrollment History\" security area")
    assert [c.granted for c in checks if c.flow == "write_participation"] == [None]


def test_aeries_logs_hold_no_certificate_or_student_data(aeries_sis, ae_server, ae_conn, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    ae_server.faults += [Fault("/schools/120/students", status=500), Fault("/schools/130/calendar", status=429,
                                                                             retry_after="0")]
    scope = scope_of()
    pull_sprg_api("aeries_api", ae_conn, scope, program_set(load_layout("SPRG"), scope), tmp_path)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records and CERT not in text
    leaked = set(re.findall(r"[A-Za-z0-9'-]+", text)) & _student_words(aeries_sis)
    assert not leaked, sorted(leaked)[:5]
