"""The LEAs one deployment submits for, as configuration (docs/leas.md).

A county office of education, a charter management organization or a district with dependent charters
submits CALPADS files for several LEAs, each with its own CDS code, SIS, publish folder and team. They are
listed in one YAML document (the file named by ``[calpads] leas_file``)::

    defaults:                       # optional: every LEA's value unless it sets its own
      timezone: America/Los_Angeles
      files: [SPRG, SENR, STAS, LEAP]
      schedule: "0 2 * * *"
    leas:
      - code: "1964733"             # the LEA's 7-digit CDS code (county + district)
        name: Example Unified
        sis: {source: sql, conn_id: sis_db_1964733}
        publish_root: file:///srv/calpads_out/1964733
        emails: {team: [data-team@example.k12.ca.us]}
        afterschool: {drop_path: /srv/afterschool/1964733, write_mode: dry_run}   # optional

Without that setting a deployment serves one LEA exactly as before (``LeaConfig.single()``): the DAGs keep their
plain ids (``calpads_sprg``) and the connections, Variables and settings they always read.

Nothing here imports Airflow: the Airflow layer (calpads_airflow.leas) reads the setting and builds the DAGs.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CDS_LEA = re.compile(r"^[0-9]{7}$")
CONN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+$")
QUEUE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
FILE_TYPES = ("SPRG", "SENR", "STAS", "LEAP")
ROLES = ("team", "it", "coordinator", "afterschool")
SQL_SOURCE = "sql"
WRITE_MODES = ("dry_run", "write")
AFTERSCHOOL_KEYS = ("drop_path", "conn_id", "write_mode")
# The schedules a listed LEA may set besides its files' ([calpads] schedule_<key> otherwise): its own nightly SIS
# pull, afterschool sync and integration checks.
DAG_SCHEDULE_KEYS = ("SIS_PULL", "AFTERSCHOOL_SYNC", "INTEGRATION_HEALTH")
DEFAULT_SCHEDULE = "0 2 * * *"
DEFAULT_TIMEZONE = "America/Los_Angeles"
DEFAULT_POOL_SLOTS = 4
LEA_KEYS = {"code", "name", "sis", "store_conn_id", "publish_root", "emails", "schedule", "timezone", "files",
            "queue", "pool_slots", "afterschool"}
DEFAULT_KEYS = LEA_KEYS - {"code", "name", "sis", "publish_root", "emails", "afterschool"}


class LeaConfigError(ValueError):
    """The LEA configuration cannot be used; the message names the entry and the field."""


@dataclass(frozen=True)
class LeaConfig:
    """One LEA: where its SIS is, where its history, work files and published files live, who hears from it.

    ``code`` is None only for the single LEA of a deployment without an LEA file (``single()``); every path,
    DAG id and pool of a configured LEA is derived from its code."""

    code: str | None
    name: str
    sis_source: str = SQL_SOURCE
    sis_conn_id: str = "sis_db"
    store_conn_id: str = "calpads_store"
    publish_root: str | None = None        # None: the calpads_publish_root Variable (+ /<code> for a listed LEA)
    emails: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # role -> addresses; empty: Variables
    schedule: Mapping[str, str] = field(default_factory=dict)             # record type -> cron; empty: settings
    timezone: str | None = None             # None: [calpads] timezone
    files: tuple[str, ...] = FILE_TYPES
    queue: str | None = None                # a Celery queue for the LEA's tasks (None: the default queue)
    pool_slots: int = DEFAULT_POOL_SLOTS
    # Its afterschool platform's export: a drop folder or an HTTP connection (None and None: the folder
    # <afterschool_drop_path Variable>/<code>); what its scheduled write-back runs do (dry_run unless set to write).
    afterschool_drop_path: str | None = None
    afterschool_conn_id: str | None = None
    afterschool_write_mode: str = "dry_run"

    @classmethod
    def single(cls, sis_source: str = SQL_SOURCE, sis_conn_id: str = "sis_db") -> LeaConfig:
        """The one LEA of a deployment without an LEA file: today's connections, Variables and settings."""
        return cls(code=None, name="", sis_source=sis_source, sis_conn_id=sis_conn_id)

    @property
    def listed(self) -> bool:
        """True for an LEA of the LEA file (its code is in its DAG ids, paths and pool)."""
        return self.code is not None

    def dag_id(self, base: str) -> str:
        """``calpads_sprg`` -> ``calpads_sprg__1964733`` for a listed LEA; unchanged for the single one."""
        return f"{base}__{self.code}" if self.code else base

    @property
    def pool(self) -> str:
        """The Airflow pool of the tasks that read this LEA's SIS: one per SIS connection, so a slow SIS only
        holds its own slots. (The single LEA keeps calpads_airflow.runtime.sis_pool.)"""
        return f"sis__{self.sis_conn_id}"

    def publish_location(self, base: str) -> str:
        """Where this LEA publishes, given the calpads_publish_root Variable (``base``): its own ``publish_root``,
        else ``<base>/<code>`` for a listed LEA, else ``base`` itself (the single LEA)."""
        if self.publish_root:
            return self.publish_root
        return f"{base.rstrip('/')}/{self.code}" if self.listed else base

    def recipients(self, roles: Iterable[str] = ()) -> tuple[str, ...]:
        """The LEA's own addresses for these roles (none: the team); a blank role falls back to the team."""
        from calpads.alerts.roles import addresses_for

        return tuple(addresses_for(roles, self.emails.get("team", ()), lambda role: self.emails.get(role, ())))

    def cron(self, key: str) -> str | None:
        """The LEA's own cron for a file type (SPRG) or one of its other DAGs (DAG_SCHEDULE_KEYS: sis_pull, ...)."""
        return self.schedule.get(key.upper())

    def shard(self, shards: int) -> int:
        """Which of ``shards`` DAG files builds this LEA's DAGs: stable, so adding an LEA moves no other."""
        return zlib.crc32((self.code or "").encode()) % shards


def page_files_path(code: str | None) -> str:
    """The CALPADS page's path that serves an LEA's published files: ``files`` for the single LEA, ``lea-<code>``
    for a listed one (``/calpads/lea-1964733/<year>/<RT>/<run>/...``: as deep as ``/calpads/files/...``, so a
    report's relative link back to the Airflow UI works for both)."""
    return f"lea-{code}" if code else "files"


@dataclass(frozen=True)
class LeaDirectory:
    """Every listed LEA, in the file's order."""

    leas: tuple[LeaConfig, ...]

    def get(self, code: str) -> LeaConfig:
        for lea in self.leas:
            if lea.code == code:
                return lea
        raise LeaConfigError(f"LEA {code} is not in the LEA configuration (known: {', '.join(self.codes())})")

    def codes(self) -> list[str]:
        return [lea.code for lea in self.leas if lea.code]

    def pools(self) -> list[tuple[str, int, str]]:
        """(pool, slots, description) per SIS connection: LEAs sharing a connection share its pool (the most
        slots any of them asks for)."""
        slots: dict[str, int] = {}
        users: dict[str, list[str]] = {}
        for lea in self.leas:
            slots[lea.pool] = max(slots.get(lea.pool, 0), lea.pool_slots)
            users.setdefault(lea.pool, []).append(lea.code or "")
        return [(pool, slots[pool], f"SIS reads of LEA {', '.join(users[pool])}") for pool in slots]


# --------------------------------------------------------------------------- parsing
def load_leas(path: str | Path, *, known_sources: Iterable[str] = ()) -> LeaDirectory:
    """The LEA file at ``path``, checked whole (LeaConfigError lists every problem, each with its entry)."""
    import yaml

    p = Path(path)
    try:
        document = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LeaConfigError(f"The LEA file {p} cannot be read ({exc.strerror or type(exc).__name__}): check "
                             f"[calpads] leas_file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LeaConfigError(f"The LEA file {p} is not valid YAML{where}") from None
    return parse_leas(document, known_sources=known_sources, name=str(p))


def parse_leas(document: Any, *, known_sources: Iterable[str] = (), name: str = "the LEA file") -> LeaDirectory:
    """The LEA document (already parsed YAML/JSON) as a LeaDirectory, or LeaConfigError listing every problem."""
    problems: list[str] = []
    if not isinstance(document, Mapping) or not isinstance(document.get("leas"), list) or not document["leas"]:
        raise LeaConfigError(f"{name}: it must be a mapping with a non-empty list 'leas' (docs/leas.md)")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise LeaConfigError(f"{name}: 'defaults' must be a mapping")
    for key in sorted(set(defaults) - DEFAULT_KEYS):
        problems.append(f"defaults: unknown or per-LEA-only setting {key!r}")
    sources = {SQL_SOURCE, *known_sources}
    leas = []
    for i, entry in enumerate(document["leas"], start=1):
        label = f"LEA entry {i}"
        if not isinstance(entry, Mapping):
            problems.append(f"{label}: must be a mapping")
            continue
        if isinstance(entry.get("code"), str) and CDS_LEA.match(entry["code"]):
            label = f"LEA {entry['code']}"
        lea = _parse_entry({**defaults, **entry}, label, sources if known_sources else None, problems)
        if lea is not None:
            leas.append(lea)
    problems += _clashes(leas)
    if problems:
        raise LeaConfigError(f"{name} has {len(problems)} problem(s):\n- " + "\n- ".join(problems))
    return LeaDirectory(tuple(leas))


def _parse_entry(entry: Mapping[str, Any], label: str, sources: set[str] | None,
                 problems: list[str]) -> LeaConfig | None:
    before = len(problems)
    for key in sorted(set(entry) - LEA_KEYS):
        problems.append(f"{label}: unknown setting {key!r}")
    code = entry.get("code")
    if not isinstance(code, str) or not CDS_LEA.match(code):
        problems.append(f"{label}: code must be the LEA's 7-digit CDS code as a quoted string, e.g. \"1964733\"")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}: name is required")
    sis = entry.get("sis") or {}
    source = sis.get("source", SQL_SOURCE) if isinstance(sis, Mapping) else None
    conn_id = sis.get("conn_id") if isinstance(sis, Mapping) else None
    if source is None or (sources is not None and source not in sources):
        problems.append(f"{label}: sis.source must be one of {', '.join(sorted(sources or {SQL_SOURCE}))}")
    if not isinstance(conn_id, str) or not CONN_ID.match(conn_id):
        problems.append(f"{label}: sis.conn_id must name the Airflow connection of this LEA's SIS")
    store = entry.get("store_conn_id", "calpads_store")
    if not isinstance(store, str) or not CONN_ID.match(store):
        problems.append(f"{label}: store_conn_id must name an Airflow connection")
    emails = _emails(entry.get("emails"), label, problems)
    schedule = _schedule(entry.get("schedule"), label, problems)
    files = _files(entry.get("files", list(FILE_TYPES)), label, problems)
    queue = entry.get("queue")
    if queue is not None and (not isinstance(queue, str) or not QUEUE.match(queue)):
        problems.append(f"{label}: queue must be a Celery queue name (letters, digits, _ . -)")
    slots = entry.get("pool_slots", DEFAULT_POOL_SLOTS)
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        problems.append(f"{label}: pool_slots must be a whole number of at least 1")
    publish_root = entry.get("publish_root")
    if publish_root is not None and (not isinstance(publish_root, str) or not publish_root.strip()):
        problems.append(f"{label}: publish_root must be a path or URL")
    tz = entry.get("timezone")
    if tz is not None and not _known_timezone(tz):
        problems.append(f"{label}: timezone {tz!r} is not a known time zone (e.g. America/Los_Angeles)")
    afterschool = _afterschool(entry.get("afterschool"), label, problems)
    if len(problems) > before:
        return None
    return LeaConfig(code=code, name=name.strip(), sis_source=source, sis_conn_id=conn_id, store_conn_id=store,
                     publish_root=publish_root, emails=emails,
                     schedule=schedule, timezone=tz, files=files, queue=queue, pool_slots=slots,
                     afterschool_drop_path=afterschool.get("drop_path"), afterschool_conn_id=afterschool.get("conn_id"),
                     afterschool_write_mode=afterschool.get("write_mode", "dry_run"))


def _afterschool(raw: Any, label: str, problems: list[str]) -> dict[str, str]:
    """``afterschool: {drop_path: ..., conn_id: ..., write_mode: dry_run|write}``, each optional."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"{label}: afterschool must be a mapping with drop_path, conn_id and/or write_mode")
        return {}
    for key in sorted(set(raw) - set(AFTERSCHOOL_KEYS)):
        problems.append(f"{label}: afterschool.{key} is not a setting (use {', '.join(AFTERSCHOOL_KEYS)})")
    drop, conn_id, mode = raw.get("drop_path"), raw.get("conn_id"), raw.get("write_mode", "dry_run")
    if drop is not None and (not isinstance(drop, str) or not drop.strip()):
        problems.append(f"{label}: afterschool.drop_path must be the folder this LEA's afterschool export is "
                        f"dropped in")
    if conn_id is not None and (not isinstance(conn_id, str) or not CONN_ID.match(conn_id)):
        problems.append(f"{label}: afterschool.conn_id must name the Airflow connection of this LEA's afterschool "
                        f"platform")
    if mode not in WRITE_MODES:
        problems.append(f"{label}: afterschool.write_mode must be dry_run or write (what its scheduled runs do "
                        f"with the SIS)")
    out = {"write_mode": mode}
    if isinstance(drop, str) and drop.strip():
        out["drop_path"] = drop.strip()
    if isinstance(conn_id, str):
        out["conn_id"] = conn_id
    return out


def _emails(raw: Any, label: str, problems: list[str]) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping) or not raw.get("team"):
        problems.append(f"{label}: emails.team is required: the addresses that get this LEA's alerts (no LEA "
                        f"borrows another's list)")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for role, addresses in raw.items():
        if role not in ROLES:
            problems.append(f"{label}: emails.{role} is not a role (use {', '.join(ROLES)})")
            continue
        values = [addresses] if isinstance(addresses, str) else addresses
        if not isinstance(values, list) or not all(isinstance(a, str) and EMAIL.match(a.strip()) for a in values):
            problems.append(f"{label}: emails.{role} must be a list of email addresses")
            continue
        out[role] = tuple(a.strip() for a in values)
    return out


def _schedule(raw: Any, label: str, problems: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, str):
        raw = dict.fromkeys(FILE_TYPES, raw)
    if not isinstance(raw, Mapping):
        problems.append(f"{label}: schedule must be a cron string or a mapping of file type to cron")
        return {}
    out: dict[str, str] = {}
    for rt, cron in raw.items():
        if str(rt).upper() not in FILE_TYPES + DAG_SCHEDULE_KEYS or not isinstance(cron, str) \
                or not _valid_cron(cron):
            problems.append(f"{label}: schedule {rt}: {cron!r} is not a file type with a valid cron expression "
                            f"(keys: {', '.join(FILE_TYPES + DAG_SCHEDULE_KEYS).lower()})")
            continue
        out[str(rt).upper()] = cron
    return out


def _files(raw: Any, label: str, problems: list[str]) -> tuple[str, ...]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values or any(str(v).upper() not in FILE_TYPES for v in values):
        problems.append(f"{label}: files must list some of {', '.join(FILE_TYPES)}")
        return ()
    return tuple(dict.fromkeys(str(v).upper() for v in values))


def _clashes(leas: list[LeaConfig]) -> list[str]:
    """Two LEAs may share a SIS connection or the store, never a code, a publish folder or an afterschool export
    (its folder or its connection). (Work folders are always their own: <calpads_work_root>/<DAG id>/<run id>, and
    each DAG id holds the LEA's code.)"""
    problems = []
    for what, values in (("code", [lea.code for lea in leas]),
                         ("publish_root", [lea.publish_root.rstrip("/") for lea in leas if lea.publish_root]),
                         ("afterschool.drop_path", [lea.afterschool_drop_path.rstrip("/") for lea in leas
                                                    if lea.afterschool_drop_path]),
                         ("afterschool.conn_id", [lea.afterschool_conn_id for lea in leas
                                                  if lea.afterschool_conn_id])):
        seen: set[str | None] = set()
        for value in values:
            if value in seen:
                problems.append(f"two LEAs have the same {what} {value!r}: each LEA needs its own")
            seen.add(value)
    return problems


def _valid_cron(expr: str) -> bool:
    from croniter import croniter

    return bool(croniter.is_valid(expr))


def _known_timezone(tz: Any) -> bool:
    import zoneinfo

    try:
        return isinstance(tz, str) and zoneinfo.ZoneInfo(tz) is not None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):   # OSError: a folder of zones, e.g. "Pacific"
        return False
