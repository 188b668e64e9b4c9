"""The Airflow UI in a real browser (Debian's chromium driven by Playwright) against the api-server of
the compose topology (tests/integration/topology.py): log in, find the DAG, read its docs, trigger
it from the Params form, follow the run to the quality gate's log and open the validation report.

Screenshots go to <tmp_path>/screenshots (CALPADS_SCREENSHOTS_DIR=docs/screenshots copies them there).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from datetime import date
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from tests.integration.topology import ADMIN, make_demo_sis, start_topology, wait_for

pytestmark = [pytest.mark.topology, pytest.mark.postgres]

DAG = "calpads_sprg"
DISPLAY_NAME = "CALPADS SPRG – Student Program"
CHROMIUM = Path("/usr/bin/chromium")
# Playwright cannot download its own browser here: Debian's chromium with these flags (AIRFLOW-NOTES).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000
REPORT_LINE = re.compile(r"Validation report: (file://\S+index\.html)")


def require_browser() -> None:
    """Missing chromium or Playwright fails the test in CI (scripts/setup.sh installs both) and skips it
    on a developer machine without root."""
    missing = []
    if not CHROMIUM.exists():
        missing.append("chromium (apt-get install -y chromium; scripts/setup.sh does it as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (requirements.txt)")
    if missing:
        message = "UI browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def student_identifiers(sis_path: Path) -> set[str]:
    """Names, SSIDs and birth dates of the demo students: none may be visible in a screenshot."""
    con = sqlite3.connect(sis_path)
    try:
        rows = con.execute("SELECT FIRST_NAME, LAST_NAME, STATE_STUDENTNUMBER, DOB FROM STUDENTS").fetchall()
    finally:
        con.close()
    values = set()
    for first, last, ssid, dob in rows:
        values.update(v for v in (f"{first} {last}", f"{last}, {first}", ssid) if v)
        if dob:
            values.update({str(dob)[:10], str(dob)[:10].replace("-", "")})
    return values


def report_line(page) -> re.Match | None:
    """The log view renders only the rows in sight: scroll it to the bottom, where the line is."""
    bottom = page.get_by_role("button", name=re.compile("scroll to bottom", re.I))
    if bottom.count():
        bottom.first.click()
    return REPORT_LINE.search(page.locator("body").inner_text())


def debug_page(page, path: Path) -> str:
    page.screenshot(path=str(path))
    return f"url {page.url}; page text ends with: {page.locator('body').inner_text()[-1500:]}"


class Shots:
    """Screenshots with a check that their visible text shows no student identifier."""

    def __init__(self, folder: Path, forbidden: set[str]):
        self.folder = folder
        self.forbidden = forbidden
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page, name: str) -> None:
        text = page.locator("body").inner_text()
        leaked = sorted(v for v in self.forbidden if v in text)
        assert not leaked, f"{name}: {len(leaked)} student identifier(s) visible on the page"
        page.screenshot(path=str(self.folder / f"{name}.png"))

    def publish(self, pattern: str = "*.png") -> None:
        """Copy the screenshots to CALPADS_SCREENSHOTS_DIR (docs/screenshots) when it is set."""
        target = os.environ.get("CALPADS_SCREENSHOTS_DIR")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            for png in sorted(self.folder.glob(pattern)):
                shutil.copy2(png, Path(target) / png.name)


def test_ui_login_dag_docs_trigger_form_run_and_validation_report(tmp_path, smtp_server):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    from calpads.run_scope import param_specs

    sis_path = tmp_path / "sis.db"
    sis_url = make_demo_sis(sis_path)
    shots = Shots(tmp_path / "screenshots", student_identifiers(sis_path))
    with start_topology(tmp_path, sis_url=sis_url, smtp_port=smtp_server.port) as topo, sync_playwright() as pw:
        topo.start_all()
        topo.wait_dag(DAG)
        tasks = topo.api("GET", f"/dags/{DAG}/tasks")["tasks"]
        task_names = [t["task_display_name"] for t in tasks]
        assert all(name != t["task_id"] for name, t in zip(task_names, tasks, strict=True))  # readable names

        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)

            # ---- log in (simple auth manager; the password airflow-init wrote)
            page.goto(f"{topo.api_url}/")
            page.locator("input[name=username]").fill(ADMIN)
            page.locator("input[name=password]").fill(topo.password)
            shots.take(page, "01-login")
            page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))

            # ---- DAG list: the SPRG DAG with its tags
            page.goto(f"{topo.api_url}/dags")
            card_link = page.get_by_role("link", name=DISPLAY_NAME, exact=True)
            expect(card_link).to_be_visible()
            for tag in ("SPRG", "calpads"):
                expect(page.get_by_role("link", name=tag, exact=True).first).to_be_visible()
            shots.take(page, "02-dag-list")

            # ---- the DAG: owner, tags, readable task names, docs
            card_link.click()
            page.wait_for_url(re.compile(rf"/dags/{DAG}$"))
            expect(page.get_by_text("integration-team", exact=True).first).to_be_visible()  # owner
            for name in task_names:
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            shots.take(page, "03-dag")
            page.get_by_role("button", name="Dag Docs").click()
            docs = page.get_by_role("dialog")
            expect(docs).to_contain_text("CALPADS SPRG (Student Program) extract")
            expect(docs).to_contain_text("Which files to upload")
            expect(docs).to_contain_text("When you get an alert")
            shots.take(page, "04-dag-docs")
            page.keyboard.press("Escape")
            expect(docs).to_be_hidden()

            # ---- trigger from the Params form: every contract param with its description
            page.get_by_role("button", name="Trigger Dag").click()
            form = page.get_by_role("dialog")
            specs = param_specs(date.today())
            for name, spec in specs.items():
                field = form.locator(f"[name=element_{name}]")
                expect(field).to_have_count(1)
                expect(form).to_contain_text(spec["title"])
                expect(form).to_contain_text(spec["description"])
            trigger = form.get_by_role("button", name="Trigger", exact=True)
            expect(trigger).to_be_enabled()  # the defaults alone make a valid run
            form.locator("#element_academic_year").fill("2025-2026")  # the demo district's year
            shots.take(page, "05-trigger-form")
            trigger.click()
            page.wait_for_url(re.compile(rf"/dags/{DAG}/runs/[^/]+$"))
            run_id = unquote(page.url.rsplit("/runs/", 1)[1])
            run = topo.api("GET", f"/dags/{DAG}/dagRuns/{run_id}")
            assert run["conf"]["academic_year"] == "2025-2026" and run["triggered_by"] == "ui"

            # ---- the run: success on the Celery worker, task names readable
            assert topo.wait_run(DAG, run_id, timeout=300) == "success", topo.diagnostics()
            page.reload()
            expect(page.get_by_text("Success").first).to_be_visible()
            for name in task_names:
                expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
            shots.take(page, "06-run")

            # ---- the quality gate's log names the validation report; open it
            page.goto(f"{topo.api_url}/dags/{DAG}/runs/{quote(run_id, safe='')}/tasks/quality_gate")
            expect(page.get_by_text("Quality gate (CALPADS rules)").first).to_be_visible()
            found = wait_for("the validation report line in the quality gate's log", lambda: report_line(page), 90,
                             interval=2, on_timeout=lambda: debug_page(page, shots.folder / "07-debug.png"))
            report_url = found.group(1)
            page.get_by_placeholder(re.compile("search logs", re.I)).fill("Validation report")
            shots.take(page, "07-quality-gate-log")
            report = Path(report_url.removeprefix("file://"))
            assert report.is_relative_to(tmp_path / "published" / "2025-2026" / "SPRG")
            page.goto(report_url)  # a file:// link does not open from an http page: follow it directly
            expect(page.locator("body")).to_contain_text("SPRG")
            shots.take(page, "08-validation-report")
        finally:
            browser.close()

    shots.publish()
