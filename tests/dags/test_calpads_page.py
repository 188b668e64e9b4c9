"""The CALPADS page of the Airflow UI, through Airflow's own api-server app (create_app, the plugin loaded from
the plugins folder, the simple auth manager's JWTs): anonymous requests get nothing, a viewer sees the verdicts
and opens the report and files, a user without a role sees and downloads nothing, and no path escapes the root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_readiness import YEAR, run_folder, saved_history

pytestmark = pytest.mark.dag


@pytest.fixture
def client(airflow_home, tmp_path, monkeypatch):
    root = tmp_path / "published"
    run_folder(root, "scheduled__1", held={"SPRG-A": ["1", "2"]}, age=500)
    run_folder(root, "manual__2", held={"SPRG-A": ["2"], "SPRG-C": ["7"]}, deletes=1, deletes_report=True, age=5)
    (root / YEAR / "SPRG" / ".tmp-manual__3").mkdir()     # a publication in progress: never served
    (root / YEAR / "SPRG" / ".tmp-manual__3" / "secret.txt").write_text("x")
    for name in ("SPRG_1234_2025-2026_AU.txt", "SPRG_1234_2025-2026_D.txt", "SPRG_1234_2025-2026.txt"):
        (root / YEAR / "SPRG" / "manual__2" / name).write_text("SPRG^A^1\n")
    (root / "integration").mkdir()
    (root / "integration" / "health.json").write_text(
        '{"run_id": "scheduled__h", "date": "2025-12-01", "checks": [{"check": "test_extract_leap", '
        '"title": "LEAP test extract", "ok": false, "detail": "3 records fail"}]}')
    (tmp_path / "outside.txt").write_text("not published")
    monkeypatch.setenv("AIRFLOW_VAR_CALPADS_PUBLISH_ROOT", f"file://{root}")
    monkeypatch.setenv("AIRFLOW_CONN_CALPADS_STORE", f"sqlite:///{tmp_path}/store.db")
    from airflow import plugins_manager
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    plugins_manager._get_plugins.cache_clear() if hasattr(plugins_manager._get_plugins, "cache_clear") else None
    app = create_app("core")
    tokens = {role: get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=f"u-{role}", role=role))
              for role in ("viewer", None)}
    with TestClient(app) as c:
        c.tokens = tokens
        yield c


def auth(client, role="viewer"):
    return {"Authorization": f"Bearer {client.tokens[role]}"}


BASE = f"/calpads/files/{YEAR}/SPRG/manual__2"


def test_anonymous_requests_get_nothing(client):
    for path in ("/calpads/", "/calpads/run/calpads_sprg/manual__2", f"{BASE}/report/index.html",
                 f"{BASE}/SPRG_1234_2025-2026_AU.txt", "/calpads/files/integration/health.json"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert "SPRG" not in r.text and "held back" not in r.text


def test_the_page_says_what_to_upload(client):
    r = client.get("/calpads/", headers=auth(client))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    page = r.text
    assert "READY, 2 held back" in page and "SPRG 2025-2026" in page
    assert f'href="{BASE}/SPRG_1234_2025-2026_AU.txt"' in page and f'href="{BASE}/report/index.html"' in page
    assert f'href="{BASE}/report/deletes.csv"' in page
    assert "SPRG-C" in page and "LEAP test extract" in page and "FAILING" in page
    assert "Compared with the previous published run scheduled__1" in page


def test_report_and_files_open_with_one_click(client):
    report = client.get(f"{BASE}/report/index.html", headers=auth(client))
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "content-disposition" not in report.headers
    upload = client.get(f"{BASE}/SPRG_1234_2025-2026_AU.txt", headers=auth(client))
    assert upload.status_code == 200 and upload.text == "SPRG^A^1\n"
    assert upload.headers["content-disposition"] == 'attachment; filename="SPRG_1234_2025-2026_AU.txt"'


def test_no_path_leaves_the_published_run_folders(client):
    for path in (f"/calpads/files/{YEAR}/SPRG/.tmp-manual__3/secret.txt", "/calpads/files/../outside.txt",
                 f"/calpads/files/{YEAR}/SPRG/..%2F..%2F..%2Foutside.txt", f"/calpads/files/{YEAR}/SPRG",
                 f"/calpads/files/{YEAR}/NOPE/manual__2/report/index.html"):
        assert client.get(path, headers=auth(client)).status_code == 404, path


def test_a_user_without_a_role_reads_nothing(client):
    page = client.get("/calpads/", headers=auth(client, None))
    assert page.status_code == 200 and "READY, 2" not in page.text and "SPRG_1234" not in page.text
    assert client.get(f"{BASE}/report/index.html", headers=auth(client, None)).status_code == 403
    assert client.get("/calpads/run/calpads_sprg/manual__2", headers=auth(client, None)).status_code == 403


def test_the_run_tab_shows_that_run(client):
    r = client.get("/calpads/run/calpads_sprg/scheduled__1", headers=auth(client))
    assert r.status_code == 200 and "READY, 2 held back" in r.text and "scheduled__1" in r.text
    assert "SPRG-C" not in r.text      # that run's rules, not the latest's


# --------------------------------------------------------------------------- one deployment, many LEAs
LEA_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "leas_three.yaml"
ALDER, BIRCH, CEDAR = "5610001", "5610002", "5610003"
NIGHT = "scheduled__2026-03-02T10:00:00+00:00"     # one night: the same run id in every LEA
AU = f"SPRG_1234_{YEAR}_AU.txt"                    # the name in run_folder's manifest


@pytest.fixture
def leas_client(airflow_home, tmp_path, monkeypatch):
    """Three LEAs (tests/fixtures/leas_three.yaml) on one publish root and one shared history store: Alder with
    one rule's records held back, Birch with another rule's and a delete, Cedar with no run yet."""
    base = tmp_path / "published"
    for code, rule, held, deletes in ((ALDER, "ALDER-RULE", ["1"], 0), (BIRCH, "BIRCH-RULE", ["1", "2", "3"], 1)):
        folder = run_folder(base / code, NIGHT, held={rule: held}, deletes=deletes, deletes_report=bool(deletes),
                            age=60)
        (folder / AU).write_text(f"SPRG^A^{code}\n")   # the same file name in each LEA, its own records
    (base / "integration").mkdir()
    (base / "integration" / "health.json").write_text('{"run_id": "scheduled__h", "checks": []}')
    saved_history(f"sqlite:///{tmp_path}/store.db", [(ALDER, "alder-saved-run", 2), (BIRCH, "birch-saved-run", 3)])
    monkeypatch.setenv("AIRFLOW__CALPADS__LEAS_FILE", str(LEA_FILE))
    monkeypatch.setenv("AIRFLOW_VAR_CALPADS_PUBLISH_ROOT", f"file://{base}")
    monkeypatch.setenv("AIRFLOW_CONN_CALPADS_STORE", f"sqlite:///{tmp_path}/store.db")
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = create_app("core")
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="u-viewer", role="viewer"))
    with TestClient(app) as c:
        c.headers.update({"Authorization": f"Bearer {token}"})
        yield c


def sections(page: str) -> dict[str, str]:
    """LEA code -> the HTML of its section of the page."""
    parts = re.split(r'<section class="lea" data-lea="(\d{7})">', page)
    return {code: html.split("</section>", 1)[0] for code, html in zip(parts[1::2], parts[2::2], strict=True)}


OWN = {ALDER: ("ALDER-RULE", "READY, 1 held back", "alder-saved-run", f"/calpads/lea-{ALDER}/{YEAR}/SPRG/"),
       BIRCH: ("BIRCH-RULE", "READY, 3 held back", "birch-saved-run", f"/calpads/lea-{BIRCH}/{YEAR}/SPRG/")}


def test_one_section_per_lea_and_nothing_of_one_lea_in_another(leas_client):
    page = leas_client.get("/calpads/")
    assert page.status_code == 200
    found = sections(page.text)
    assert list(found) == [ALDER, BIRCH, CEDAR]
    assert "LEA 5610001: Alder Union Elementary" in found[ALDER] and "Cedar Charter Academy" in found[CEDAR]
    for code, other in ((ALDER, BIRCH), (BIRCH, ALDER)):
        for mine, theirs in zip(OWN[code], OWN[other], strict=True):
            assert mine in found[code], (code, mine)
            assert theirs not in found[code], (code, theirs)
    assert f'href="/calpads/lea-{ALDER}/{YEAR}/SPRG/{NIGHT}/{AU}"' in found[ALDER]
    assert "Deletes going out:</b> 1" in found[BIRCH] and "Deletes going out:</b> 0" in found[ALDER]
    assert "No CALPADS run of LEA 5610003" in found[CEDAR] and "saved-run" not in found[CEDAR]
    assert '<option value="5610002"' in page.text               # the LEA picker


def test_picking_one_lea_shows_that_lea_alone(leas_client):
    page = leas_client.get("/calpads/", params={"lea": BIRCH}).text
    assert list(sections(page)) == [BIRCH]
    assert all(mine in page for mine in OWN[BIRCH])
    assert not any(theirs in page for theirs in OWN[ALDER])
    assert f'<option value="{BIRCH}" selected>' in page
    unknown = leas_client.get("/calpads/", params={"lea": "9999999"})
    assert unknown.status_code == 404 and not sections(unknown.text) and "NO SUCH LEA" in unknown.text


def test_each_lea_s_files_come_from_its_own_folder(leas_client):
    for code in (ALDER, BIRCH):
        r = leas_client.get(f"/calpads/lea-{code}/{YEAR}/SPRG/{NIGHT}/{AU}")
        assert r.status_code == 200 and r.text == f"SPRG^A^{code}\n"
    for path in (f"/calpads/lea-{ALDER}/{YEAR}/SPRG/{NIGHT}/report/deletes.csv",   # Birch has one, not Alder
                 f"/calpads/lea-{ALDER}/..%2F{BIRCH}/{YEAR}/SPRG/{NIGHT}/report/index.html",
                 f"/calpads/lea-{CEDAR}/{YEAR}/LEAP/{NIGHT}/report/index.html",           # not a Cedar file
                 f"/calpads/lea-9999999/{YEAR}/SPRG/{NIGHT}/report/index.html",
                 f"/calpads/files/{ALDER}/{YEAR}/SPRG/{NIGHT}/report/index.html",         # only the LEA's path
                 f"/calpads/files/{YEAR}/SPRG/{NIGHT}/report/index.html",
                 "/calpads/files/integration/health.json"):    # integration_health serves the single LEA only
        assert leas_client.get(path).status_code == 404, path


def test_the_run_tab_of_an_lea_shows_that_lea_s_run(leas_client):
    r = leas_client.get(f"/calpads/run/calpads_sprg__{BIRCH}/{NIGHT}")
    assert r.status_code == 200 and "LEA 5610002: Birch Joint Unified" in r.text
    assert "READY, 3 held back" in r.text and "BIRCH-RULE" in r.text and f"/calpads/lea-{BIRCH}/" in r.text
    assert "ALDER-RULE" not in r.text and f"lea-{ALDER}" not in r.text


def test_the_leas_may_come_from_a_variable_in_the_metadata_database(leas_client, monkeypatch):
    """[calpads] leas_variable: the page (in the api-server, outside DAG parsing and tasks) reads the Variable
    from the metadata database, as the DAG files read it through the Task SDK."""
    from airflow.models.variable import Variable

    monkeypatch.delenv("AIRFLOW__CALPADS__LEAS_FILE")
    monkeypatch.setenv("AIRFLOW__CALPADS__LEAS_VARIABLE", "calpads_leas_page_test")
    Variable.set("calpads_leas_page_test", LEA_FILE.read_text())
    try:
        page = leas_client.get("/calpads/")
    finally:
        Variable.delete("calpads_leas_page_test")
    assert page.status_code == 200 and list(sections(page.text)) == [ALDER, BIRCH, CEDAR]
    assert all(mine in sections(page.text)[BIRCH] for mine in OWN[BIRCH])


def test_too_many_leas_to_show_at_once_asks_to_pick_one(leas_client, monkeypatch):
    from calpads_airflow.ui import app

    monkeypatch.setattr(app, "ALL_LEAS_AT_ONCE", 2)
    page = leas_client.get("/calpads/").text
    assert not sections(page) and "3 LEAs: pick one above" in page
    assert all(f'href="/calpads/?lea={code}"' in page for code in (ALDER, BIRCH, CEDAR))
    assert not any(mine in page for mine in OWN[ALDER] + OWN[BIRCH])
    assert list(sections(leas_client.get("/calpads/", params={"lea": CEDAR}).text)) == [CEDAR]
