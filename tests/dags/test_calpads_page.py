"""The CALPADS page of the Airflow UI, through Airflow's own api-server app (create_app, the plugin loaded from
the plugins folder, the simple auth manager's JWTs): anonymous requests get nothing, a viewer sees the verdicts
and opens the report and files, a user without a role sees and downloads nothing, and no path escapes the root."""

from __future__ import annotations

import pytest

from tests.unit.test_readiness import YEAR, run_folder

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
