"""One deployment, many LEAs (docs/leas.md): isolation and concurrency through `airflow dags test`.

A county office's LEA file lists five LEAs:
- Alder (5610001) and Birch (5610002), each on its own SQL SIS database, and Cedar (5610003) on a PowerSchool API
  server (tests/integration/vendor_servers): three demo districts generated with their own LEA codes, so their
  school codes and local student ids differ;
- Dogwood (5610004), misconfigured: its SIS connection points at Alder's database (LeaMismatch);
- Elm (5610005), misconfigured: its SIS connection names a database that does not exist.

Their file DAGs (``calpads_sprg__<code>``, and Cedar's ``calpads_senr__5610003``) run in three `airflow dags test`
processes at the same time (tests/dags/dagrun.run_dags, one batch per process, each with its own Airflow home),
over one shared calpads_store on PostgreSQL and one local SMTP server that keeps each message's envelope
recipients. Each LEA must publish only its own students under its own folder, keep history rows of its own code
only, and email only its own team; the misconfigured LEAs fail alone, each telling its own team.

The ``integration_team_emails`` Variable (the single-LEA recipients) is set to an address that must never get mail,
and the single-LEA ``sis_db`` connection is not set at all: a listed LEA reads neither.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import fresh_pg_database
from tests.dags.dagrun import DagRunRequest, DagRunResult, project_env, run_dags
from tests.integration.many_leas import (
    ALDER,
    BIRCH,
    CEDAR,
    PS_CLIENT,
    PS_SECRET,
    SETTINGS,
    THREE,
    YEAR,
    DemoLea,
    SisIds,
    assert_only_own_records,
    make_sis,
    powerschool_connection,
    published_records,
    sis_ids,
    write_lea_file,
)

pytestmark = [pytest.mark.dag, pytest.mark.postgres]

DOGWOOD = DemoLea("5610004", "Dogwood Elementary", "it@dogwood.example")   # its connection: Alder's SIS
ELM = DemoLea("5610005", "Elm Valley Unified", "calpads@elm.example")      # its connection: no database
MISCONFIGURED = (DOGWOOD, ELM)
NOBODY = "single-lea-team@county.example"   # integration_team_emails: a listed LEA never writes to it
LOGICAL_DATE = "2026-04-01"
CONF = {"academic_year": YEAR, "save_history": True}
# One `airflow dags test` process per batch, the three at once; each LEA's first run overlaps the others'.
BATCHES: tuple[tuple[tuple[DemoLea, str], ...], ...] = (
    ((ALDER, "SPRG"), (DOGWOOD, "SPRG")),
    ((BIRCH, "SPRG"), (ELM, "SPRG")),
    ((CEDAR, "SPRG"), (CEDAR, "SENR")),
)


# --------------------------------------------------------------------------------------------- mail
@dataclass
class Envelope:
    rcpt_tos: list[str]
    subject: str
    text: str


@dataclass
class EnvelopeBox:
    """aiosmtpd handler: every message with the recipients the SMTP session named (To, Cc and Bcc alike)."""
    received: list[Envelope] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        msg = message_from_bytes(envelope.original_content or envelope.content)
        parts = [msg["Subject"] or ""]
        for part in msg.walk():
            payload = part.get_payload(decode=True) if part.get_content_maintype() == "text" else None
            if payload:
                parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        with self.lock:
            self.received.append(Envelope(sorted(envelope.rcpt_tos), msg["Subject"] or "", "\n".join(parts)))
        return "250 Message accepted for delivery"

    def about(self, lea: DemoLea) -> list[Envelope]:
        """The messages about this LEA's DAGs (their ids hold its code)."""
        return [m for m in self.received if f"__{lea.code}" in m.text]


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[EnvelopeBox, int]]:
    from aiosmtpd.controller import Controller

    from calpads.demo.mailbox import free_port

    box = EnvelopeBox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


# --------------------------------------------------------------------------------------------- SIS, store
@pytest.fixture(scope="module")
def sis(tmp_path_factory) -> dict[str, Path]:
    """LEA code -> its demo SIS (SQLite)."""
    root = tmp_path_factory.mktemp("sis")
    return {lea.code: make_sis(root / f"{lea.code}.db", lea) for lea in THREE}


@pytest.fixture(scope="module")
def owned(sis) -> dict[str, SisIds]:
    return {code: sis_ids(path) for code, path in sis.items()}


@pytest.fixture(scope="module")
def shared_store() -> Iterator[str]:
    """One calpads_store database on PostgreSQL for every LEA (rows scoped by LEA)."""
    with fresh_pg_database("calpads_leas") as url:
        yield url


@pytest.fixture(scope="module")
def powerschool(sis) -> Iterator[str]:
    """Cedar's SIS served over the PowerSchool API; its URL."""
    from tests.integration.vendor_servers.powerschool import PowerSchoolServer

    engine = sa.create_engine(f"sqlite:///{sis[CEDAR.code]}")
    with PowerSchoolServer(engine, PS_CLIENT, PS_SECRET, max_page_size=500) as server:
        yield server.url
    engine.dispose()


# --------------------------------------------------------------------------------------------- the runs
@dataclass
class County:
    root: Path
    publish_root: Path                          # the calpads_publish_root Variable
    folders: dict[str, Path]                    # LEA code -> where its files must go
    results: dict[tuple[str, str], DagRunResult]
    windows: dict[tuple[str, str], tuple[str, str]]   # (code, file) -> the DagRun's (start, end)
    seconds: float

    def run_folder(self, lea: DemoLea, record_type: str) -> Path:
        return self.folders[lea.code] / YEAR / record_type / str(self.results[lea.code, record_type].run_id)


def _homes(airflow_home: Path, root: Path, count: int) -> list[Path]:
    """``count`` Airflow homes, each with a copy of the session's migrated metadata DB: concurrent `airflow dags
    test` processes must not share one SQLite metadata DB. (`dags test` runs tasks without checking pools: the
    LEAs' pools are checked on the Celery topology, tests/integration/test_topology_leas.py.)"""
    homes = []
    for i in range(count):
        home = root / f"airflow_home_{i}"
        home.mkdir()
        # SQLite's backup, not a file copy: the metadata DB is in WAL mode (its last writes may be in the -wal
        # file), and closing a plain file handle on it would drop this process's own SQLite locks on it (POSIX
        # locks are per process), which left later reads of it here failing with "database disk image is
        # malformed" while other processes wrote it.
        src, dst = sqlite3.connect(airflow_home / "airflow.db"), sqlite3.connect(home / "airflow.db")
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        homes.append(home)
    return homes


def _window(home: Path, dag_id: str) -> tuple[str, str]:
    con = sqlite3.connect(home / "airflow.db")
    try:
        return con.execute("SELECT start_date, end_date FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                           (dag_id,)).fetchone()
    finally:
        con.close()


@pytest.fixture(scope="module")
def county(airflow_home, tmp_path_factory, sis, shared_store, powerschool, mailbox) -> County:
    root = tmp_path_factory.mktemp("county")
    box, smtp_port = mailbox
    publish_root = root / "pub"
    birch_share = root / "birch_share"          # Birch sets its own publish_root; the others get <root>/<code>
    leas_file = write_lea_file(root / "leas.yaml", [
        ALDER.entry(), BIRCH.entry(publish_root=f"file://{birch_share}"),
        CEDAR.entry(queue="lea_5610003", pool_slots=2), DOGWOOD.entry(), ELM.entry()])
    folders = {lea.code: publish_root / lea.code for lea in (ALDER, CEDAR, *MISCONFIGURED)}
    folders[BIRCH.code] = birch_share
    publish_root.mkdir()    # the mounted share of calpads_publish_root: the runs create <root>/<code> in it
    birch_share.mkdir()     # an LEA's own publish_root is a share too: a run never creates it
    homes = _homes(airflow_home, root, len(BATCHES))

    connections = {
        ALDER.env_conn: f"sqlite:///{sis[ALDER.code]}",
        BIRCH.env_conn: f"sqlite:///{sis[BIRCH.code]}",
        CEDAR.env_conn: json.dumps(powerschool_connection(powerschool)),
        DOGWOOD.env_conn: f"sqlite:///{sis[ALDER.code]}",                  # another LEA's SIS
        ELM.env_conn: f"sqlite:///{root / 'no_such_folder' / 'sis.db'}",    # a database that does not exist
    }
    batches = []
    for home, batch in zip(homes, BATCHES, strict=True):
        env = project_env(home, sis_url="sqlite:///unused", store_url=shared_store, publish_root=publish_root,
                          work_root=root / "work", smtp_port=smtp_port, emails=NOBODY)
        del env["AIRFLOW_CONN_SIS_DB"]      # no listed LEA reads the single LEA's SIS
        env.update(connections)
        env.update(SETTINGS)
        env["AIRFLOW__CALPADS__LEAS_FILE"] = str(leas_file)
        batches.append([DagRunRequest(env, lea.dag_id(rt), LOGICAL_DATE, CONF) for lea, rt in batch])

    t0 = time.monotonic()
    with ThreadPoolExecutor(len(batches)) as pool:   # each run_dags is its own `airflow dags test` process
        outcomes = list(pool.map(run_dags, batches))
    seconds = time.monotonic() - t0
    results, windows = {}, {}
    for home, batch, batch_results in zip(homes, BATCHES, outcomes, strict=True):
        for (lea, rt), result in zip(batch, batch_results, strict=True):
            results[lea.code, rt] = result
            (root / f"{lea.code}-{rt}.log").write_text(result.output)   # each run's own output, to read on failure
            windows[lea.code, rt] = _window(home, lea.dag_id(rt))
    print(f"many LEAs: {sum(len(b) for b in BATCHES)} runs in {len(BATCHES)} processes: {seconds:.0f}s")
    return County(root, publish_root, folders, results, windows, seconds)


def _succeeded(county: County, lea: DemoLea, record_type: str) -> DagRunResult:
    res = county.results[lea.code, record_type]
    failed = {t: s for t, s in res.task_states.items() if s != "success"}
    assert res.state == "success", (lea.code, record_type, failed, res.output[-4000:])
    return res


# --------------------------------------------------------------------------------------------- tests
def test_the_runs_were_concurrent(county):
    """The three LEAs' SPRG runs overlapped in time (three processes), so isolation is tested under
    concurrency, not one LEA after another."""
    spans = [county.windows[lea.code, "SPRG"] for lea in THREE]
    assert all(start and end for start, end in spans), spans
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans


@pytest.mark.parametrize(("lea", "record_type"), [(ALDER, "SPRG"), (BIRCH, "SPRG"), (CEDAR, "SPRG"),
                                                  (CEDAR, "SENR")], ids=lambda v: getattr(v, "code", v))
def test_each_lea_publishes_only_its_own_students_under_its_own_root(county, owned, lea, record_type):
    _succeeded(county, lea, record_type)
    folder = county.run_folder(lea, record_type)
    assert folder.is_dir(), sorted(p.relative_to(county.root) for p in county.root.rglob("manifest.json"))
    others = [ids for code, ids in owned.items() if code != lea.code]
    assert_only_own_records(published_records(folder, record_type), owned[lea.code], others,
                            f"{lea.code} {record_type}")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {p.name for p in folder.glob("*.txt")} == {f["name"] for f in manifest["files"]}


def test_nothing_is_published_outside_the_leas_own_folders(county):
    """Every published file is in the folder of the LEA whose DAG published it; the misconfigured LEAs' folders
    and the shared root itself hold none."""
    published = {p.parent for p in county.root.rglob("manifest.json") if "work" not in p.relative_to(
        county.root).parts}
    expected = {county.run_folder(lea, rt) for lea in THREE for rt in lea.files}
    assert published == expected
    for lea in MISCONFIGURED:
        assert not any(county.folders[lea.code].rglob("*.txt")), lea.code
    assert not (county.publish_root / YEAR).exists(), "a file published in the shared root, outside any LEA's"


def test_a_listed_leas_folder_under_the_shared_root_is_made_by_its_runs_for_owner_and_group_only(county):
    for lea in (ALDER, CEDAR):
        mode = county.folders[lea.code].stat().st_mode & 0o777
        assert mode & 0o007 == 0 and mode & 0o700 == 0o700, (lea.code, oct(mode))


def test_each_leas_history_rows_carry_its_code_only(county, shared_store, owned):
    """The shared store holds one saved run per (file, LEA) that published, each under its own code, and the
    students of each LEA's log rows are that LEA's own; the misconfigured LEAs saved nothing."""
    for lea in THREE:
        for rt in lea.files:
            _succeeded(county, lea, rt)
    engine = sa.create_engine(shared_store)
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT id, record_type, reporting_lea, run_id FROM calpads_history_runs")
                                ).fetchall()
            students = {pk: {r[0] for r in conn.execute(sa.text(
                "SELECT DISTINCT local_student_id FROM calpads_history_log WHERE run_pk = :pk"), {"pk": pk})}
                for pk, *_ in runs}
            scopes = set(conn.execute(sa.text("SELECT record_type, reporting_lea FROM calpads_history_scopes")))
            counted = set(conn.execute(sa.text(
                "SELECT DISTINCT record_type, reporting_lea, run_id FROM calpads_staging_counts")))
    finally:
        engine.dispose()
    expected = {(rt, lea.code, str(county.results[lea.code, rt].run_id)) for lea in THREE for rt in lea.files}
    assert {(rt, code, run_id) for _, rt, code, run_id in runs} == expected
    assert scopes == {(rt, lea.code) for lea in THREE for rt in lea.files}
    # the staging gate's counts (one pull per run), under each run's own LEA; none for the misconfigured LEAs
    assert counted == expected
    for pk, _rt, code, _run in runs:
        mine = students[pk] - {None}
        assert mine and mine <= owned[code].students, code
        for other, ids in owned.items():
            if other != code:
                assert not mine & ids.students, (code, other)


def test_each_lea_emails_only_its_own_team(county, mailbox):
    """Every message goes to exactly one LEA's team and is about that LEA's DAGs alone; each LEA that ran got
    its summary (held-back records) or its failure alert; the single-LEA recipients got nothing."""
    box, _ = mailbox
    leas = (*THREE, *MISCONFIGURED)
    assert box.received, "no email at all"
    for message in box.received:
        assert NOBODY not in message.rcpt_tos, message.subject
        about = [lea for lea in leas if f"__{lea.code}" in message.text]
        assert len(about) == 1, (message.subject, [lea.code for lea in about])
        assert message.rcpt_tos == [about[0].team], (message.subject, message.rcpt_tos)
    for lea in leas:
        assert box.about(lea), f"LEA {lea.code}'s team got no email"
    for lea in THREE:
        assert any("held back" in m.text for m in box.about(lea)), lea.code


def test_a_connection_to_another_leas_sis_fails_that_lea_alone(county, mailbox, owned):
    """Dogwood's connection reads Alder's SIS: its run stops in extract (LEA configuration) and its own team
    is told, naming both LEAs and no student; Alder, reading the same SIS at the same time, published."""
    res = county.results[DOGWOOD.code, "SPRG"]
    assert res.state == "failed", res.output[-3000:]
    assert res.task_states["check_params"] == "success"
    assert res.task_states["extract_records"] == "failed"
    assert res.task_states.get("publish_files") in ("upstream_failed", None)
    _succeeded(county, ALDER, "SPRG")
    box, _ = mailbox
    alerts = [m for m in box.about(DOGWOOD) if "extract_records" in m.text]
    assert alerts and all(m.rcpt_tos == [DOGWOOD.team] for m in alerts)
    alert = alerts[0].text
    assert "LEA configuration" in alert and f"LEA {ALDER.code}" in alert and f"LEA {DOGWOOD.code}" in alert
    assert not set(alert.split()) & owned[ALDER.code].students


def test_a_connection_to_a_missing_database_fails_that_lea_alone(county, mailbox):
    """Elm's SIS database does not exist: its run fails in extract and only its team hears of it; Birch, in the
    same process right before it, published."""
    res = county.results[ELM.code, "SPRG"]
    assert res.state == "failed", res.output[-3000:]
    assert res.task_states["extract_records"] == "failed"
    _succeeded(county, BIRCH, "SPRG")
    box, _ = mailbox
    alerts = [m for m in box.about(ELM) if "extract_records" in m.text]
    assert alerts and all(m.rcpt_tos == [ELM.team] for m in alerts)

