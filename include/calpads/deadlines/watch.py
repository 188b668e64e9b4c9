"""Deadline watch: the CALPADS submission calendar (calendar.yaml + the district's Variable) and the
readiness of each file for the windows whose deadline is near.

Readiness of a file = its latest run's manifest.json under ``<publish_root>/<year>/<RT>/``: open
errors (records held back by the quality gate, per rule), pending changes not yet submitted (the
run's new, changed and deleted records against the saved submission history; unchanged records are
not pending), and the latest integration_health checks that concern the file
(``<publish_root>/integration/health.json``): LEAP is not ready while its test extract, its day
counts against the SIS or the afterschool spot-check fail.
"""

from __future__ import annotations

import copy
import functools
import html
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from typing import Any

import yaml

WINDOWS = ("fall1", "fall2", "eoy1", "eoy2")
PENDING = ("new", "changed", "deleted")     # the diff's counts that are changes still to submit
# integration_health check ids (prefixes) that concern a file; any file: its own test extract.
HEALTH_CHECKS_FOR = {"LEAP": ("test_extract_leap", "leap_vs_sis", "afterschool_days", "flow_write_participation")}


@functools.lru_cache(maxsize=1)
def _base_calendar() -> dict[str, Any]:
    # Read once per process: every file DAG's params form asks for it while the DAG file is parsed.
    return yaml.safe_load(resources.files(__package__).joinpath("calendar.yaml").read_text())


def load_calendar(override: str | dict[str, Any] | None = None) -> dict[str, Any]:
    base = copy.deepcopy(_base_calendar())   # callers may change what they get
    if override:
        extra = yaml.safe_load(override) if isinstance(override, str) else override
        _merge(base, extra or {})
    return base


def _merge(a: dict[str, Any], b: dict[str, Any]) -> None:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = v


def census_day(first_year: int) -> date:
    """First Wednesday of October (CONFIRMED-OFFICIAL rule, calpads-reference.md §3)."""
    d = date(first_year, 10, 1)
    return d + timedelta(days=(2 - d.weekday()) % 7)


def fall1_window(cal: dict[str, Any], academic_year: str) -> tuple[date, date]:
    """(opens, closes) of the Fall 1 window: from Census Day (or the calendar's ``opens``) to the end of the
    amendment window (``amendment_closes``; when the year's dates are not published, January 31 after, the
    amendment window having closed in late January: Jan 23, 2026 for 2025-26, CDE reporting calendar)."""
    first = int(academic_year[:4])
    w = ((cal.get("years") or {}).get(academic_year) or {}).get("fall1") or {}
    opens = _as_date(w.get("opens")) or _as_date(w.get("census_day")) or census_day(first)
    closes = _as_date(w.get("amendment_closes")) or date(first + 1, 1, 31)
    return opens, closes


def default_submission(today: date, cal: dict[str, Any] | None = None, academic_year: str | None = None) -> str:
    """The program set "by the calendar": fall1 while the academic year's (default: today's) Fall 1 window is
    open on ``today``, eoy2 otherwise."""
    from calpads.run_scope import current_academic_year

    year = academic_year or current_academic_year(today)
    opens, closes = fall1_window(cal if cal is not None else load_calendar(), year)
    return "fall1" if opens <= today <= closes else "eoy2"


@dataclass
class Window:
    key: str
    name: str
    academic_year: str
    deadline: date | None
    census_day: date | None
    files: list[str]
    confidence: str
    missing: list[str] = field(default_factory=list)    # dates the district must supply


def _as_date(v: Any) -> date | None:
    if v is None or v == "":
        return None
    return v if isinstance(v, date) else date.fromisoformat(str(v))


def windows(cal: dict[str, Any], academic_year: str) -> list[Window]:
    first = int(academic_year[:4])
    year = (cal.get("years") or {}).get(academic_year) or {}
    out = []
    for key in WINDOWS:
        w = year.get(key) or {}
        census = _as_date(w.get("census_day")) or (census_day(first) if key == "fall1" else None)
        deadline = _as_date(w.get("deadline"))
        confidence = str(w.get("confidence") or ("derived (Census Day rule)" if key == "fall1" else "not published"))
        missing = [] if deadline else [f"{cal['windows'][key]} certification deadline"]
        out.append(Window(key, cal["windows"][key], academic_year, deadline, census,
                          list((cal.get("files") or {}).get(key) or []), confidence, missing))
    return out


def due_soon(cal: dict[str, Any], today: date, academic_years: list[str]) -> tuple[list[Window], list[Window]]:
    """(windows whose deadline is within notice_days from today, windows lacking dates)."""
    notice = int(cal.get("notice_days", 30))
    soon, unknown = [], []
    for year in academic_years:
        for w in windows(cal, year):
            if w.deadline is None:
                unknown.append(w)
            elif today <= w.deadline <= today + timedelta(days=notice):
                soon.append(w)
    return soon, unknown


def latest_manifest(publish_root: Any, academic_year: str, record_type: str) -> dict[str, Any] | None:
    folder = publish_root / academic_year / record_type
    if not folder.exists():
        return None
    best, best_key = None, None
    for run in folder.iterdir():
        if run.name.startswith("."):   # a publication's temporary folder (calpads.publish.target): not a result
            continue
        m = run / "manifest.json"
        if not m.exists():
            continue
        key = m.stat().st_mtime if hasattr(m.stat(), "st_mtime") else m.stat()["mtime"]
        if best_key is None or key > best_key:
            best, best_key = m, key
    if best is None:
        return None
    with best.open("r") as fh:
        return json.load(fh)


def latest_health(publish_root: Any) -> dict[str, Any] | None:
    """The latest integration_health results (integration/health.json), or None."""
    path = publish_root / "integration" / "health.json"
    if not path.exists():
        return None
    with path.open("r") as fh:
        return json.load(fh)


def failing_health(health: dict[str, Any] | None, record_type: str) -> list[str]:
    """Titles of the failing health checks that concern the file."""
    prefixes = HEALTH_CHECKS_FOR.get(record_type, (f"test_extract_{record_type.lower()}",))
    return [c.get("title") or c["check"] for c in (health or {}).get("checks", [])
            if c.get("ok") is False and str(c.get("check", "")).startswith(prefixes)]


def readiness(publish_root: Any, academic_year: str, record_type: str,
              health: dict[str, Any] | None = None) -> dict[str, Any]:
    m = latest_manifest(publish_root, academic_year, record_type)
    if m is None:
        return {"record_type": record_type, "status": "never run",
                "detail": f"No {record_type} run has published anything for {academic_year}."}
    v = m.get("validation") or {}
    diff = (m.get("counts") or {}).get("diff") or {}
    held = int(v.get("records_held_back") or 0)
    rules = {k: r.get("count") for k, r in (v.get("rules") or {}).items() if r.get("severity") == "error"}
    pending = {k: int(diff[k]) for k in PENDING if isinstance(diff.get(k), int | float) and diff[k]}
    failing = failing_health(health, record_type)
    status = "open errors" if held else "integration checks failing" if failing else "ready"
    return {"record_type": record_type, "status": status, "run_id": m.get("run_id"), "open_errors": held,
            "error_rules": rules, "pending_changes": pending, "mode": (m.get("params") or {}).get("mode"),
            "failing_checks": failing}


def email(today: date, soon: list[Window], unknown: list[Window], ready: dict[str, dict[str, Any]]
          ) -> tuple[str, str]:
    names = ", ".join(f"{w.name} {w.academic_year} ({(w.deadline - today).days} days)" for w in soon if w.deadline)
    subject = f"[CALPADS] deadline watch: {names}" if soon else "[CALPADS] deadline watch: dates needed"
    parts = []
    for w in soon:
        rows = "".join(
            f"<tr><td>{html.escape(rt)}</td><td>{html.escape(str(ready[rt]['status']))}</td>"
            f"<td>{ready[rt].get('open_errors', '')}</td>"
            f"<td>{html.escape(json.dumps(ready[rt].get('error_rules', {})))}"
            f"</td><td>{html.escape(json.dumps(ready[rt].get('pending_changes', {})))}</td>"
            f"<td>{html.escape('; '.join(ready[rt].get('failing_checks') or []))}</td></tr>" for rt in w.files)
        parts.append(f"<h3>{html.escape(w.name)} {w.academic_year}: certification deadline {w.deadline} "
                     f"({(w.deadline - today).days if w.deadline else '?'} days; {html.escape(w.confidence)})</h3>"
                     "<table border='1' cellpadding='4' cellspacing='0'><tr><th>File</th><th>Status</th>"
                     "<th>Open errors</th><th>Error rules</th><th>Pending changes not yet submitted</th>"
                     "<th>Failing integration checks (integration_health email)</th></tr>"
                     f"{rows}</table>")
    if unknown:
        items = "".join(f"<li>{html.escape(w.name)} {w.academic_year}: {html.escape(', '.join(w.missing))}"
                        + (f" (Census Day {w.census_day}, from the first-Wednesday rule)" if w.census_day else "")
                        + "</li>" for w in unknown)
        parts.append("<p>These dates are not published in the calendar: set them in the Variable "
                     f"<code>calpads_submission_calendar</code> (same YAML as calendar.yaml):</p><ul>{items}</ul>")
    return subject, "".join(parts) or "<p>No deadline within the notice period.</p>"
