"""The CALPADS page in a real browser (Debian's chromium driven by Playwright) against a real api-server, after
two calpads_sprg runs through `airflow dags test`: a clean district (2024-2025: READY) and one with planted rule
violations (2025-2026: READY, n held back). Refused without login; after login the page's verdicts and counts,
the report in one click, a file downloaded whole, the quality gate's "Validation report" button, the run's
CALPADS tab. Screenshots go to <tmp_path>/screenshots (CALPADS_SCREENSHOTS_DIR=docs/screenshots copies them)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import airflow_base_env, demo_sis
from tests.dags.apiserver import ADMIN, api_server, api_server_env
from tests.dags.dagrun import DagRunRequest, project_env, run_dag, run_dags
from tests.integration.test_ui_browser import CHROMIUM, FLAGS, TIMEOUT_MS, Shots, require_browser, student_identifiers

pytestmark = pytest.mark.dag
HELD_YEAR, CLEAN_YEAR = "2025-2026", "2024-2025"
PASSWORD = "page-browser-pw-1"


def district(path: Path, year: str, dirty: float) -> str:
    return f"sqlite:///{demo_sis(path, students=300, seed=7, dirty=dirty, academic_year=year)}"


def test_calpads_page_in_the_browser(airflow_home, tmp_path, smtp_server):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    pub = tmp_path / "published"
    held_sis, clean_sis = tmp_path / "held.db", tmp_path / "clean.db"
    urls = {HELD_YEAR: district(held_sis, HELD_YEAR, 0.02), CLEAN_YEAR: district(clean_sis, CLEAN_YEAR, 0.0)}
    base_env = project_env(airflow_home, sis_url=urls[HELD_YEAR], store_url=f"sqlite:///{tmp_path}/store.db",
                           publish_root=pub, work_root=tmp_path / "work", smtp_port=smtp_server.port)
    env, port = api_server_env(base_env, tmp_path, PASSWORD)
    env["AIRFLOW__CALPADS__ERROR_CEILING"] = "0.5"      # the planted violations are held back, the rest published
    shots = Shots(tmp_path / "screenshots", student_identifiers(held_sis) | student_identifiers(clean_sis))
    with api_server(env, port, PASSWORD, tmp_path / "api-server.log") as api, sync_playwright() as pw:
        runs = {}      # with the api-server up, so that each run writes its note
        for year, logical in ((CLEAN_YEAR, "2025-07-15"), (HELD_YEAR, "2026-04-01")):   # after start_date
            r = run_dag({**env, "AIRFLOW_CONN_SIS_DB": urls[year]}, "calpads_sprg", logical, {"academic_year": year})
            assert r.state == "success", r.output[-4000:]
            runs[year] = (r.run_id, json.loads((pub / year / "SPRG" / r.run_id / "manifest.json").read_text()))
        held = runs[HELD_YEAR][1]["validation"]["records_held_back"]
        assert held > 0 and runs[CLEAN_YEAR][1]["validation"]["records_held_back"] == 0

        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True,
                                          timezone_id="America/Los_Angeles")
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)

            # ---- refused without login: nothing of the page, no file
            response = page.goto(f"{api.url}/calpads/")
            assert response.status == 401 and "READY" not in page.content()
            au = next(f["name"] for f in runs[HELD_YEAR][1]["files"] if f["kind"] == "AU")
            folder = f"{HELD_YEAR}/SPRG/{quote(runs[HELD_YEAR][0], safe='')}"
            assert page.goto(f"{api.url}/calpads/files/{folder}/{au}").status == 401
            shots.take(page, "calpads-01-refused-without-login")

            # ---- log in, open CALPADS from the navigation
            page.goto(f"{api.url}/")
            page.locator("input[name=username]").fill(ADMIN)
            page.locator("input[name=password]").fill(PASSWORD)
            page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))
            page.get_by_role("link", name="CALPADS").first.click()
            frame = page.frame_locator("iframe").first
            expect(frame.get_by_text("CALPADS: what to upload")).to_be_visible()
            clean = frame.locator(f"[data-year='{CLEAN_YEAR}'][data-record-type='SPRG']")
            held_card = frame.locator(f"[data-year='{HELD_YEAR}'][data-record-type='SPRG']")
            expect(clean.locator(".verdict")).to_have_text("READY")
            expect(held_card.locator(".verdict")).to_have_text(f"READY, {held} held back")
            records_au = next(f["records"] for f in runs[HELD_YEAR][1]["files"] if f["kind"] == "AU")
            expect(held_card.get_by_role("row", name=re.compile(re.escape(au)))).to_contain_text(str(records_au))
            shots.take(page, "calpads-02-page-in-the-ui")

            # ---- the report in one click (in the page's frame: the UI's iframe sandbox allows no new tab), then
            #      back on the page, a file downloaded whole
            held_card.get_by_role("link", name="Validation report").click()
            expect(frame.locator("h1")).to_contain_text("SPRG validation report")
            expect(frame.locator(".verdict")).to_contain_text(f"READY, {held} held back")
            shots.take(page, "calpads-03-validation-report")
            page.go_back()      # the frame's history: back to the page
            expect(held_card.locator(".verdict")).to_have_text(f"READY, {held} held back")
            with page.expect_download() as dl:
                held_card.get_by_role("link", name=au).click()
            saved = tmp_path / "download.txt"
            dl.value.save_as(saved)
            assert saved.read_bytes() == (pub / HELD_YEAR / "SPRG" / runs[HELD_YEAR][0] / au).read_bytes()

            # ---- the quality gate's "Validation report" button (an http link the UI renders)
            run_id = runs[HELD_YEAR][0]
            page.goto(f"{api.url}/dags/calpads_sprg/runs/{quote(run_id, safe='')}/tasks/quality_gate/details")
            button = page.get_by_role("link", name="Validation report").first     # under "Extra Links"
            expect(button).to_be_visible()
            shots.take(page, "calpads-04-report-button")
            href = button.get_attribute("href")
            assert href and href.startswith(f"{api.url}/calpads/files/{HELD_YEAR}/SPRG/")
            page.goto(href)
            expect(page.locator("h1")).to_contain_text("SPRG validation report")

            # ---- the run's CALPADS tab (the dag_run external view: its href gets the DAG and run ids)
            page.goto(f"{api.url}/dags/calpads_sprg/runs/{quote(run_id, safe='')}/plugin/calpads_run")
            tab = page.frame_locator("iframe").first
            expect(tab.locator(".verdict").first).to_have_text(f"READY, {held} held back")
            expect(tab.get_by_role("link", name=au)).to_be_visible()
            expect(page.get_by_text(re.compile(r"^READY: \d+ records in _AU")).first).to_be_visible()   # the run note
            shots.take(page, "calpads-05-run-tab")
        finally:
            browser.close()

    shots.publish("calpads-*.png")


# --------------------------------------------------------------------------- one deployment, many LEAs
LEA_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "leas_three.yaml"
LEAS = {"5610001": "Alder Union Elementary", "5610002": "Birch Joint Unified", "5610003": "Cedar Charter Academy"}


def lea_district(path: Path, code: str, dirty: float) -> str:
    """A demo district's SIS whose Reporting LEA (PREFS districtnumber) is ``code``."""
    demo_sis(path, students=300, seed=int(code[-1]), dirty=dirty, academic_year=HELD_YEAR)
    con = sqlite3.connect(path)
    try:
        con.execute("UPDATE PREFS SET VALUE = ? WHERE NAME = 'districtnumber' AND SCHOOLID = 0", (code,))
        con.execute("UPDATE PREFS SET VALUE = ? WHERE NAME = 'districtname' AND SCHOOLID = 0", (LEAS[code],))
        con.commit()
    finally:
        con.close()
    return f"sqlite:///{path}"


def test_leas_in_the_browser(tmp_path, smtp_server):
    """Three LEAs (tests/fixtures/leas_three.yaml) in one deployment: Alder and Birch run their SPRG DAG for real
    (Alder clean, Birch with records held back); Cedar has not run. The DAG list shows every LEA's DAGs and, by
    the LEA's tag, one LEA's; the CALPADS page shows one section per LEA and, picked, one LEA alone."""
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    home = tmp_path / "airflow"       # its own metadata DB: the three LEAs' DAGs only
    home.mkdir()
    migrated = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_base_env(home),
                              capture_output=True, text=True, timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    pub = tmp_path / "published"
    sis = {code: tmp_path / f"sis_{code}.db" for code in ("5610001", "5610002")}
    urls = {"5610001": lea_district(sis["5610001"], "5610001", 0.0),
            "5610002": lea_district(sis["5610002"], "5610002", 0.02)}
    base_env = project_env(home, sis_url=urls["5610001"], store_url=f"sqlite:///{tmp_path}/store.db",
                           publish_root=pub, work_root=tmp_path / "work", smtp_port=smtp_server.port)
    env, port = api_server_env(base_env, tmp_path, PASSWORD)
    env.update({"AIRFLOW__CALPADS__LEAS_FILE": str(LEA_FILE), "AIRFLOW__CALPADS__ERROR_CEILING": "0.5",
                **{f"AIRFLOW_CONN_SIS_DB_{code}": url for code, url in urls.items()}})
    reserialized = subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], env=env,
                                  capture_output=True, text=True, timeout=600)
    assert reserialized.returncode == 0, reserialized.stderr[-3000:]
    shots = Shots(tmp_path / "screenshots", set().union(*(student_identifiers(p) for p in sis.values())))
    with api_server(env, port, PASSWORD, tmp_path / "api-server.log") as api, sync_playwright() as pw:
        results = run_dags([DagRunRequest(env, f"calpads_sprg__{code}", "2026-04-01",
                                          {"academic_year": HELD_YEAR, "save_history": True}) for code in urls])
        manifests = {}
        for code, r in zip(urls, results, strict=True):
            assert r.state == "success", r.output[-4000:]
            manifests[code] = json.loads((pub / code / HELD_YEAR / "SPRG" / r.run_id / "manifest.json").read_text())
        run_ids = {code: r.run_id for code, r in zip(urls, results, strict=True)}
        held = {code: m["validation"]["records_held_back"] for code, m in manifests.items()}
        assert held["5610001"] == 0 and held["5610002"] > 0

        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000},
                                       timezone_id="America/Los_Angeles").new_page()
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page.goto(f"{api.url}/")
            page.locator("input[name=username]").fill(ADMIN)
            page.locator("input[name=password]").fill(PASSWORD)
            page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))

            # ---- the DAG list: every LEA's file DAGs, named with the LEA
            page.goto(f"{api.url}/dags")
            page.get_by_role("button", name="Show table view").click()    # one line per DAG: all of them in sight
            for code, name in LEAS.items():
                expect(page.get_by_role("link", name=f"CALPADS SPRG – Student Program · {name} ({code})",
                                        exact=True)).to_be_visible()
            shots.take(page, "leas-01-dag-list")

            # ---- filtered by one LEA's tag: that LEA's DAGs alone
            page.goto(f"{api.url}/dags?tags={quote('LEA 5610002')}")
            birch = page.get_by_role("link", name=re.compile(r"· Birch Joint Unified \(5610002\)$"))
            # SPRG, SENR, STAS, LEAP, and Birch's own SIS pull (a SQL SIS), afterschool sync and health checks
            expect(birch).to_have_count(7)
            expect(page.get_by_role("link", name=re.compile(r"Alder|Cedar"))).to_have_count(0)
            shots.take(page, "leas-02-dag-list-one-lea")

            # ---- the CALPADS page: one section per LEA
            page.goto(f"{api.url}/dags")
            page.get_by_role("link", name="CALPADS").first.click()
            frame = page.frame_locator("iframe").first
            expect(frame.get_by_text("CALPADS: what to upload")).to_be_visible()
            expect(frame.locator("section.lea")).to_have_count(3)
            alder = frame.locator("section[data-lea='5610001']")
            birch_section = frame.locator("section[data-lea='5610002']")
            expect(alder.locator(".verdict")).to_have_text("READY")
            expect(birch_section.locator(".verdict")).to_have_text(f"READY, {held['5610002']} held back")
            expect(frame.locator("section[data-lea='5610003']")).to_contain_text("has published anything yet")
            au = {code: next(f["name"] for f in m["files"] if f["kind"] == "AU") for code, m in manifests.items()}
            for code, section in (("5610001", alder), ("5610002", birch_section)):   # each LEA's own files
                link = section.get_by_role("link", name=au[code])
                expect(link).to_have_attribute("href", re.compile(rf"/calpads/lea-{code}/{HELD_YEAR}/SPRG/"))
                # its own saved submission, read from the history store both LEAs share: its run, not the other's
                mine, theirs = run_ids[code], next(run_id for c, run_id in run_ids.items() if c != code)
                expect(section).to_contain_text(re.compile(rf"Last saved submission:[\s\S]* run {re.escape(mine)}"))
                expect(section).not_to_contain_text(theirs)
            expect(alder).not_to_contain_text("Birch")
            shots.take(page, "leas-03-calpads-page")

            # ---- one LEA picked: that LEA alone
            frame.locator("select[name=lea]").select_option("5610002")
            frame.get_by_role("button", name="Show").click()
            expect(frame.locator("section.lea")).to_have_count(1)
            expect(frame.locator("section.lea")).to_have_attribute("data-lea", "5610002")
            expect(frame.locator("section.lea h2")).to_have_text("LEA 5610002: Birch Joint Unified")
            shots.take(page, "leas-04-calpads-page-one-lea")

            # ---- that LEA's report, served from its own folder; its link back to the Airflow run still resolves
            frame.locator("section.lea").get_by_role("link", name="Validation report").click()
            expect(frame.locator("h1")).to_contain_text("SPRG validation report")
            back = frame.get_by_role("link", name=run_ids["5610002"])
            expect(back).to_have_count(1)
            resolved = back.evaluate("a => a.href")
            assert resolved == f"{api.url}/dags/calpads_sprg__5610002/runs/{quote(run_ids['5610002'], safe='')}"
        finally:
            browser.close()

    shots.publish("leas-*.png")
