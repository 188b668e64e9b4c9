"""The integration, documented from its configuration (the guide: "Document the integration — so future
staff understand the data flows and know where to troubleshoot").

``render(config)`` turns the district's configuration (sources, connections, tables, publish root,
recipients) into Markdown and HTML; the integration_health DAG writes them nightly to
``<calpads_publish_root>/integration/data_flows.md|.html`` (linked from every DAG's docs).
No credentials: connections appear by id, type and host only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from calpads.alerts.roles import ROLE_VARIABLES, ROLE_WORDS
from calpads.sources.api_sources import sis_api_name
from calpads.sources.sprg_frames import SPRG_TABLE_COLUMNS

SPRG_TABLES = tuple(t.upper() for t in SPRG_TABLE_COLUMNS)   # what the SPRG pull reads
SQL_WORDS = ("sis_db (SQL)", "SELECT")


AFTERSCHOOL_READS = ("PREFS", "SCHOOLS", "STUDENTS", "REENROLLMENTS", "CALENDAR_DAY", "ATTENDANCE", "ATTENDANCE_CODE")


@dataclass
class IntegrationConfig:
    sis_source: str                      # sql | powerschool_api | aeries_api | oneroster
    writeback: str                       # sql | powerschool_api
    connections: dict[str, str]          # conn id -> "type host" (no credentials)
    publish_root: str
    recipients: list[str]
    afterschool_source: str              # e.g. "file drop /srv/drop" or "HTTP afterschool_api"
    participation_table: str = "U_AFTERSCHOOL_PARTICIPATION"
    record_types: list[str] = field(default_factory=lambda: ["SPRG"])
    role_recipients: dict[str, list[str]] = field(default_factory=dict)   # it / coordinator / afterschool -> emails
    # API source -> (how it is reached, what it must be granted): the vendor hooks' words (calpads_airflow.registry)
    source_words: dict[str, tuple[str, str]] = field(default_factory=dict)
    # One LEA of a deployment that serves several (docs/leas.md): its SIS and store connections, the suffix of its
    # DAG ids (__<code>) and its name for the page's title. The defaults are the single LEA's.
    sis_conn_id: str = "sis_db"
    store_conn_id: str = "calpads_store"
    dag_suffix: str = ""
    lea: str = ""


def source_words(c: IntegrationConfig, source: str) -> tuple[str, str]:
    """How a SIS source is reached and what it must be granted to read, in the team's words (an API
    source's words are its hook's, handed in as ``IntegrationConfig.source_words``)."""
    if source == "sql":
        return (f"{c.sis_conn_id} (SQL)", SQL_WORDS[1])
    return c.source_words.get(source, (source, "read access"))


def flows(c: IntegrationConfig) -> list[dict[str, str]]:
    system, read_perm = source_words(c, c.sis_source)
    sis = system if c.sis_source == "sql" else f"{_api_conn(c, c.sis_source)} ({system})"
    write_where = f"{c.sis_conn_id} (SQL)" if c.writeback == "sql" else (
        f"{_api_conn(c, c.writeback)} ({source_words(c, c.writeback)[0]})")
    write_perm = "INSERT, UPDATE" if c.writeback == "sql" else "plugin FullAccess (POST/PUT /ws/schema/table)"
    out = []
    for rt in c.record_types:
        out.append({"dag": f"calpads_{rt.lower()}", "flow": f"read the SIS for {rt}", "system": sis,
                    "objects": _objects_read(rt), "direction": "read", "permission": read_perm,
                    "output": f"{c.publish_root}/<year>/{rt}/<run id>/ (files, manifest.json, report/)"})
    out += [
        {"dag": "afterschool_sync", "flow": "afterschool attendance and registrations export",
         "system": c.afterschool_source,
         "objects": "attendance.csv (student_number, ssid, school_code, session_date, minutes, program); "
                    "registrations.csv (student_number, ssid, program, registration_date)",
         "direction": "read", "permission": "read the drop folder / GET the endpoint",
         "output": "calpads_store: afterschool_imports, afterschool_sessions, afterschool_registrations, "
                   "afterschool_held_rows"},
        {"dag": "calpads_leap, calpads_stas", "flow": "the afterschool export as afterschool_sync checked it (LEAP "
         "26.07 days and registrations; STAS 13.24 attendance recovery sessions)", "system": "calpads_store",
         "objects": "afterschool_sessions, afterschool_registrations, afterschool_held_rows (staged by "
                    "afterschool_sync; never the platform's files directly)",
         "direction": "read", "permission": "the pipeline's own store",
         "output": f"{c.publish_root}/<year>/LEAP|STAS/<run id>/"},
        {"dag": "afterschool_sync", "flow": "read enrollment and attendance (regular day)", "system": sis,
         "objects": ", ".join(AFTERSCHOOL_READS), "direction": "read", "permission": read_perm,
         "output": f"{c.publish_root}/<year>/AFTERSCHOOL/<run id>/ (reconciliation, recovery list)"},
        {"dag": "afterschool_sync", "flow": "write participation back", "system": write_where,
         "objects": c.participation_table, "direction": "write",
         "permission": f"{write_perm}; {'SELECT' if c.writeback == 'sql' else 'read'} for idempotency",
         "output": "calpads_store: afterschool_writeback_runs, afterschool_writeback_audit"},
        {"dag": "integration_health", "flow": "permission probes, test LEAP extract vs the SIS", "system": sis,
         "objects": f"every table above; an INSERT and an UPDATE of {c.participation_table}, rolled back",
         "direction": "read",
         "permission": "as above", "output": f"{c.publish_root}/integration/ (this page)"},
        {"dag": "calpads_deadline_watch", "flow": "readiness before deadlines", "system": "the publish root",
         "objects": "manifest.json of each file's latest run", "direction": "read", "permission": "read",
         "output": "email"},
        {"dag": "sis_nightly_pull", "flow": "check the SIS answers; row counts; the SIS assets the file DAGs wait for",
         "system": sis, "objects": "the contract tables (row counts only)", "direction": "read",
         "permission": read_perm, "output": "Airflow assets calpads://sis/<lea>/..."},
        {"dag": "calpads_maintenance", "flow": "delete old work folders and what killed publications left",
         "system": "the work root and the publish root", "objects": "work folders older than the retention; "
         "hidden temporary run folders", "direction": "write", "permission": "delete in those folders",
         "output": "its log"},
    ]
    return [_for_lea(c, row) for row in out] if c.dag_suffix else out


def _api_conn(c: IntegrationConfig, source: str) -> str:
    """The API connection's id: the source's default one, or a listed LEA's own (its sis_conn_id)."""
    return c.sis_conn_id if c.dag_suffix else sis_api_name(source)


PER_LEA_DAG = re.compile(r"\b(calpads_(?:sprg|senr|stas|leap)|afterschool_sync|integration_health|sis_nightly_pull)\b")


def _for_lea(c: IntegrationConfig, row: dict[str, str]) -> dict[str, str]:
    """A listed LEA's row: its own DAG ids (<id>__<code>) and store connection."""
    row = {k: v.replace("calpads_store", c.store_conn_id) for k, v in row.items()}
    row["dag"] = PER_LEA_DAG.sub(lambda m: m.group(1) + c.dag_suffix, row["dag"])
    row["output"] = row["output"].replace("calpads://sis/<lea>/", "calpads://sis/" + c.dag_suffix.lstrip("_") + "/")
    return row


def _objects_read(record_type: str) -> str:
    """What a file DAG's pull reads: the SPRG tables, else the builder its layout names."""
    if record_type == "SPRG":
        return ", ".join(SPRG_TABLES)
    from calpads.layouts import load_layout

    try:
        builder = load_layout(record_type).raw.get("builder")
    except FileNotFoundError:
        builder = None
    return f"the SIS tables its builder reads ({builder})" if builder else "the SIS tables of its builder"


def render(c: IntegrationConfig) -> tuple[str, str]:
    rows = flows(c)
    cols = ["dag", "flow", "system", "objects", "direction", "permission", "output"]
    title = f"{c.lea}'s" if c.lea else "The district's"
    md = [f"# {title} CALPADS data flows (generated from the configuration)", "",
          f"- SIS read through: **{c.sis_source}**; participation written through: **{c.writeback}**",
          f"- Files published under: `{c.publish_root}`",
          f"- Alerts go to: {', '.join(c.recipients) or '(nobody: set the Variable integration_team_emails)'}",
          *[f"- {ROLE_WORDS[r]} ({ROLE_VARIABLES[r]}): {', '.join(v) or 'the list above'}"
            for r, v in c.role_recipients.items()],
          "- Connections: " + "; ".join(f"`{k}` = {v}" for k, v in sorted(c.connections.items())), "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(r[k].replace("|", "/") for k in cols) + " |" for r in rows]
    md += ["", "Where to troubleshoot: a failing permission shows in the nightly integration_health email, with "
           "what to ask district IT or the vendor."]
    page = _page(c, rows, cols)
    return "\n".join(md) + "\n", page


def _page(c: IntegrationConfig, rows: list[dict[str, str]], cols: list[str]) -> str:
    """data_flows.html from its Jinja2 template (autoescaped)."""
    from calpads import templates

    roles = [(f"{ROLE_WORDS[r]} ({ROLE_VARIABLES[r]})", v) for r, v in c.role_recipients.items()]
    return templates.render("calpads.health", "data_flows.html", config=c, rows=rows, columns=cols, roles=roles,
                            connections=sorted(c.connections.items()))
