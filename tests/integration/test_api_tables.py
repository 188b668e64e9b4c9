"""Every vendor API source hands over what SENR, STAS and LEAP read, equal to the SQL source's reads.

Each local vendor server serves the demo district (with the awkward attendance of
test_attendance_pages planted); ``pull_tables`` must return each contract table as the SIS database holds
it (restricted to the columns the vendor carries, dtypes normalised) and the two attendance frames exactly
as ``sql_attendance.category_counts`` and ``leap.absent_days`` compute them inside the database.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.run_scope import RunScope
from calpads.sources.api_common import ApiSourceError, MissingSourceData, RetryPolicy
from calpads.sources.api_tables import TABLE_COLUMNS, check_supplied
from calpads.sources.attendance_pages import ABSENT_DAYS, CATEGORY_DAYS
from calpads.sources.oneroster import OneRosterClient, OneRosterSettings
from calpads.sources.powerschool_api import PowerSchoolClient, PowerSchoolSettings
from calpads.sources.sprg_frames import canonical, client_sprg_pull
from calpads.staging.contract import ENROLLMENT_CODES, rows_frame
from tests.integration.test_attendance_pages import plant_awkward_attendance, same, sql_frames
from tests.integration.vendor_servers.common import read_tables
from tests.integration.vendor_servers.powerschool import PowerSchoolServer

CLIENT_ID, CLIENT_SECRET = "calpads-client", "s3cr3t-do-not-log"
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.05, read_timeout=10, connect_timeout=5)
SCOPES = {
    "whole year": RunScope.from_params("STAS", {"academic_year": "2025-2026"}, date(2026, 6, 30)),
    "mid-year, one sub-district": RunScope.from_params(
        "STAS", {"academic_year": "2025-2026", "subdistricts": "North"}, date(2026, 1, 20)),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from calpads.demo.generator import generate_district

    path = tmp_path_factory.mktemp("demo") / "sis.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    generate_district(engine, students=400, seed=7, dirty=0.05, log=lambda _m: None)
    plant_awkward_attendance(engine)
    engine.dispose()
    return path


def copy_of(demo: Path, tmp_path: Path) -> sa.Engine:
    shutil.copy(demo, tmp_path / "sis.db")
    return sa.create_engine(f"sqlite:///{tmp_path / 'sis.db'}")


def frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows (text or typed) in the contract's types, as a staged table reads them (contract.rows_frame),
    canonically sorted."""
    return canonical(rows_frame(rows, columns))


def sql_table(engine: sa.Engine, table: str, columns: list[str], where=lambda r: True, blank_is_null: bool = False
              ) -> pd.DataFrame:
    rows = [r for r in read_tables(engine, {table: columns})[table] if where(r)]
    if blank_is_null:   # a CSV cell cannot tell '' from NULL (the supplementary files): both are blank
        rows = [{c: (None if v is not None and v.strip() == "" else v) for c, v in r.items()} for r in rows]
    return frame(rows, columns)


def assert_tables_equal(api: dict, engine: sa.Engine, columns: dict[str, list[str]], where: dict | None = None,
                        blank_is_null: bool = False) -> None:
    where = where or {}
    assert set(columns) <= set(api), set(columns) - set(api)
    for table, cols in columns.items():
        got = frame(api[table], cols)
        want = sql_table(engine, table, cols, where.get(table, lambda r: True), blank_is_null)
        assert len(want) > 0, table
        pd.testing.assert_frame_equal(got, want, obj=table)


# -- PowerSchool -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCOPES))
def test_powerschool_hands_over_every_table_and_the_attendance_frames(demo, tmp_path, name):
    scope = SCOPES[name]
    engine = copy_of(demo, tmp_path)
    with PowerSchoolServer(engine, CLIENT_ID, CLIENT_SECRET, max_page_size=250) as server:
        client = PowerSchoolClient(PowerSchoolSettings(server.url, CLIENT_ID, CLIENT_SECRET, page_size=250,
                                                       policy=FAST))
        tables = client.pull_tables(scope, tmp_path / "pages")
        client.close()
        att = server.requests("/ws/schema/table/attendance")
    assert all(not isinstance(v, list) for k, v in tables.items() if k == "attendance")   # never kept as rows
    assert "attendance" not in tables
    assert len(att) > 3                                                                   # it was paged
    assert_tables_equal(tables, engine, TABLE_COLUMNS, where={"calendar_day": lambda r: r["insession"] == "1"})
    sql = sql_frames(engine, scope)
    same(tables[CATEGORY_DAYS], sql[CATEGORY_DAYS])
    same(tables[ABSENT_DAYS], sql[ABSENT_DAYS])


def test_powerschool_attendance_resumes_from_its_checkpoint(demo, tmp_path):
    from tests.integration.vendor_servers.common import Fault

    scope = SCOPES["whole year"]
    engine = copy_of(demo, tmp_path)
    with PowerSchoolServer(engine, CLIENT_ID, CLIENT_SECRET, max_page_size=200) as server:
        client = PowerSchoolClient(PowerSchoolSettings(server.url, CLIENT_ID, CLIENT_SECRET, page_size=200,
                                                       policy=FAST))
        fault = Fault("/ws/schema/table/attendance", status=503, times=10**6, page=3)
        server.faults.append(fault)
        with pytest.raises(ApiSourceError):
            client.pull_tables(scope, tmp_path / "pages")
        fault.times = 0
        server.clear_log()
        tables = client.pull_tables(scope, tmp_path / "pages")
        client.close()
        pages = [e.query.get("page") for e in server.requests("/ws/schema/table/attendance") if e.query.get("page")]
    assert "1" not in pages and "2" not in pages and "3" in pages          # pages 1-2 came from the checkpoint
    sql = sql_frames(engine, scope)
    same(tables[CATEGORY_DAYS], sql[CATEGORY_DAYS])


# -- the gap check ---------------------------------------------------------------------------------


def test_a_source_without_calendar_or_attendance_fails_once_naming_every_gap():
    with pytest.raises(MissingSourceData) as err:
        check_supplied("OneRoster", {"STUDENTS", "STUDENTS.STATE_STUDENTNUMBER"}, ("SENR", "STAS", "LEAP"),
                       "Name a supplementary folder.")
    text = str(err.value)
    for words in ("SENR needs", "STAS needs", "LEAP needs", "CALENDAR_DAY", "ATTENDANCE_CODE.CALPADS_CATEGORY",
                  "STUDENTS.DOB",
                  "Name a supplementary folder."):
        assert words in text
    assert "STATE_STUDENTNUMBER" not in text
    check_supplied("OneRoster", {"PREFS", "SCHOOLS.SCHOOL_NUMBER", "CALENDAR_DAY", "ATTENDANCE",
                                 "ATTENDANCE_CODE.PRESENCE_STATUS_CD"}, ("LEAP",))      # LEAP alone: nothing missing



# -- Aeries ------------------------------------------------------------------------------------------

AERIES_CERT = "aeries-cert-do-not-log"
# What Aeries carries of each table, in contract columns (its own keys are made up by the client: not compared)
AERIES_COLUMNS = {
    "schools": ["school_number", "alternate_school_number", "state_excludefromreporting"],
    "calendar_day": ["schoolid", "date_value", "insession"],
    "students": ["id", "dcid", "student_number", "state_studentnumber", "dob", "gender", "schoolid", "grade_level",
                 "entrydate", "exitdate", "exitcode"],
    "reenrollments": ["studentid", "schoolid", "grade_level", "entrydate", "exitdate", "exitcode"],
    "attendance_code": ["schoolid", "att_code", "presence_status_cd", "calpads_category"],
}


def district_absence_categories(engine: sa.Engine) -> dict[str, str]:
    """The district's own translation of its Aeries absence codes to CALPADS categories (what it types into
    the connection's absence_codes), read from its attendance code table."""
    with engine.connect() as c:
        return dict(c.exec_driver_sql("SELECT DISTINCT att_code, calpads_category FROM attendance_code").fetchall())


@pytest.mark.parametrize("name", ["whole year", "mid-year, two schools"])
def test_aeries_hands_over_every_table_and_the_attendance_frames(demo, tmp_path, name):
    from calpads.sources.aeries_api import AeriesClient, AeriesSettings
    from tests.integration.vendor_servers.aeries import AeriesServer, as_aeries_district

    scope = {**SCOPES, "mid-year, two schools": RunScope.from_params(
        "STAS", {"academic_year": "2025-2026", "schools": "6010037,6060074"}, date(2026, 3, 3))}[name]
    engine = copy_of(demo, tmp_path)
    as_aeries_district(engine, scope.start_date.isoformat())
    with AeriesServer(engine, AERIES_CERT) as server:
        client = AeriesClient(AeriesSettings(server.url, AERIES_CERT, policy=FAST,
                                             absence_codes=district_absence_categories(engine)))
        tables = client.pull_tables(scope, tmp_path / "pages")
        client.close()
        months = server.requests("/attendance/0")
    assert len(months) >= 9 * 12                                   # one request per school and month
    assert "attendance" not in tables
    assert_tables_equal(tables, engine, AERIES_COLUMNS)
    sql = sql_frames(engine, scope)
    same(tables[CATEGORY_DAYS], sql[CATEGORY_DAYS])
    same(tables[ABSENT_DAYS], sql[ABSENT_DAYS])


def test_aeries_without_the_absence_code_translation_fails_before_fetching(demo, tmp_path):
    from calpads.sources.aeries_api import AeriesClient, AeriesSettings
    from tests.integration.vendor_servers.aeries import AeriesServer, as_aeries_district

    engine = copy_of(demo, tmp_path)
    as_aeries_district(engine, "2025-07-01")
    with AeriesServer(engine, AERIES_CERT) as server:
        client = AeriesClient(AeriesSettings(server.url, AERIES_CERT, policy=FAST))
        with pytest.raises(MissingSourceData, match="absence_codes") as err:
            client.pull_tables(SCOPES["whole year"], tmp_path / "pages")
        assert not server.requests("/schools")                     # failed once, before any fetch
        tables = client.pull_tables(SCOPES["whole year"], tmp_path / "pages", record_types=("SENR",))
        client.close()
    assert "STAS needs" in str(err.value) and "LEAP needs" in str(err.value) and "SENR" not in str(err.value)
    assert tables["students"] and CATEGORY_DAYS not in tables     # SENR alone reads no attendance


# -- OneRoster + the district's supplementary files ---------------------------------------------------

ONEROSTER_COLUMNS = {
    "schools": ["school_number", "alternate_school_number", "subdistrict", "state_excludefromreporting"],
    "calendar_day": ["schoolid", "date_value", "insession"],
    "students": ["id", "dcid", "student_number", "state_studentnumber", "first_name", "last_name", "dob", "gender",
                 "schoolid", "grade_level", "entrydate", "exitdate", "state_excludefromreporting", *ENROLLMENT_CODES],
    "reenrollments": ["studentid", "schoolid", "grade_level", "entrydate", "exitdate", "state_excludefromreporting",
                      *ENROLLMENT_CODES],
    "attendance_code": ["id", "schoolid", "att_code", "presence_status_cd", "calpads_category"],
}


def oneroster_client(url: str, folder: Path | None, lea: str = "0000000") -> OneRosterClient:
    return OneRosterClient(OneRosterSettings(url, CLIENT_ID, CLIENT_SECRET, token_url=f"{url}/oauth/token",
                                             page_size=100, policy=FAST,
                                             supplementary_folder=str(folder or ""), reporting_lea=lea))


@pytest.mark.parametrize("name", list(SCOPES))
def test_oneroster_with_the_supplementary_files_hands_over_every_table(demo, tmp_path, name):
    from tests.integration.vendor_servers.oneroster import (
        OneRosterServer,
        as_oneroster_district,
        write_supplementary,
    )

    scope = SCOPES[name]
    engine = copy_of(demo, tmp_path)
    as_oneroster_district(engine)
    write_supplementary(engine, tmp_path / "supplementary")
    with engine.connect() as c:
        lea = c.exec_driver_sql("SELECT value FROM prefs WHERE name = 'districtnumber' AND schoolid = 0").scalar()
    with OneRosterServer(engine, CLIENT_ID, CLIENT_SECRET) as server:
        client = oneroster_client(server.url, tmp_path / "supplementary", lea)
        tables = client.pull_tables(scope, tmp_path / "pages")
        client.close()
    assert tables["prefs"][0]["value"] == lea
    assert_tables_equal(tables, engine, ONEROSTER_COLUMNS, blank_is_null=True)
    legal = ["studentsdcid", "legalfirstname", "legallastname", "legalgender"]
    named = lambda r: any(r[c] is not None for c in legal[1:])  # noqa: E731
    pd.testing.assert_frame_equal(frame([r for r in tables["s_ca_stu_x"] if named(r)], legal),
                                  sql_table(engine, "s_ca_stu_x", legal, named, blank_is_null=True))
    sql = sql_frames(engine, scope)
    same(tables[CATEGORY_DAYS], sql[CATEGORY_DAYS])
    same(tables[ABSENT_DAYS], sql[ABSENT_DAYS])


def test_oneroster_without_supplementary_files_fails_once_in_plain_words(demo, tmp_path):
    from tests.integration.vendor_servers.oneroster import OneRosterServer

    engine = copy_of(demo, tmp_path)
    with OneRosterServer(engine, CLIENT_ID, CLIENT_SECRET) as server:
        client = oneroster_client(server.url, None, lea="")
        with pytest.raises(MissingSourceData) as err:
            client.pull_tables(SCOPES["whole year"], tmp_path / "pages")
        client.close()
        assert not server.requests("/ims/oneroster")                  # before anything was fetched
    text = str(err.value)
    for words in ("SENR needs", "STAS needs", "LEAP needs", "CALENDAR_DAY", "ATTENDANCE",
                  "STUDENTS.STATE_STUDENTNUMBER", "the Reporting LEA code", "supplementary_folder",
                  "docs/sis-sources.md"):
        assert words in text, words


@pytest.mark.parametrize(("file", "change", "message"), [
    ("attendance.csv", lambda t: t + "999999,100001,100,2025-09-02,777,ATT_ModeDaily\n",
     "attendance_codeid 777 is not an id of attendance_code.csv"),
    ("enrollment_codes.csv", lambda t: t + "100001,100,2024-01-01,5,,,,,\n",
     "enrollment_codes.csv: 1 line(s) match no OneRoster enrollment, e.g. student_number 100001, school_number 100, "
     "entrydate 2024-01-01"),
    ("students.csv", lambda t: t + "999999999,,,,,,,0\n",
     "students.csv: 1 student(s) have no OneRoster student enrollment, e.g. student_number 999999999"),
    ("schools.csv", lambda t: "\n".join(line for line in t.splitlines() if ",6010074," not in line) + "\n",
     "schools.csv has no line for the OneRoster school org-110 (CDS code 6010074)"),
])
def test_oneroster_supplementary_lines_that_match_nothing_stop_the_pull(demo, tmp_path, file, change, message):
    from calpads.sources.supplementary import SupplementaryFileError
    from tests.integration.vendor_servers.oneroster import (
        OneRosterServer,
        as_oneroster_district,
        write_supplementary,
    )

    engine = copy_of(demo, tmp_path)
    as_oneroster_district(engine)
    folder = tmp_path / "supplementary"
    write_supplementary(engine, folder)
    (folder / file).write_text(change((folder / file).read_text()))
    with OneRosterServer(engine, CLIENT_ID, CLIENT_SECRET) as server:
        client = oneroster_client(server.url, folder)
        with pytest.raises(SupplementaryFileError) as err:
            client.pull_tables(SCOPES["whole year"], tmp_path / "pages")
        client.close()
    assert message in str(err.value)


def test_an_sprg_pull_reads_no_attendance(demo, tmp_path):
    """SPRG reads no attendance: its pull must not page through the largest table."""
    engine = copy_of(demo, tmp_path)
    with PowerSchoolServer(engine, CLIENT_ID, CLIENT_SECRET, max_page_size=250) as server:
        client = PowerSchoolClient(PowerSchoolSettings(server.url, CLIENT_ID, CLIENT_SECRET, page_size=250,
                                                       policy=FAST))
        client_sprg_pull(client, SCOPES["whole year"], ["144", "181"], tmp_path / "pages")
        tables = client.pull_tables(SCOPES["whole year"], tmp_path / "pages2", record_types=("SENR",))
        client.close()
        assert not [e for e in server.requests("/ws/schema/table/attendance")
                    if e.path.rstrip("/").removesuffix("/count").endswith("/attendance")]
    assert CATEGORY_DAYS not in tables and tables["calendar_day"]


def test_a_oneroster_server_capping_the_page_size_still_gives_the_whole_roster(demo, tmp_path):
    """OneRoster 1.2 lets a server cap ``limit`` (here at 100 while the client asks 500): the first page tells the
    cap and the client pages at it, so no student or enrollment is left out."""
    from tests.integration.vendor_servers.oneroster import OneRosterServer

    engine = copy_of(demo, tmp_path)
    with engine.connect() as c:
        students = c.exec_driver_sql("SELECT COUNT(*) FROM students").scalar()
        enrollments = students + c.exec_driver_sql("SELECT COUNT(*) FROM reenrollments").scalar()
    assert students > 100
    with OneRosterServer(engine, CLIENT_ID, CLIENT_SECRET, max_limit=100) as server:
        client = OneRosterClient(OneRosterSettings(server.url, CLIENT_ID, CLIENT_SECRET,
                                                   token_url=f"{server.url}/oauth/token", page_size=500, policy=FAST))
        roster = client.pull_roster(tmp_path / "pages")
        client.close()
    assert len(roster["students"]) == students and len(roster["enrollments"]) == enrollments
