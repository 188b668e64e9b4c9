"""Faults with real processes and real databases: a bad night never sends a bad file, and nothing is
half saved. Each fault is followed by the same checks: no temporary or unlisted file in the publish
root, the history exactly as before (or complete), and a clean re-run that succeeds.

- SIS: a closed port; a PostgreSQL backend terminated (pg_terminate_backend from another connection)
  while the pull runs.
- Store: a PostgreSQL connection terminated in the middle of the save (after the run row, before the
  records); a SQLite store on a full disk (tiny tmpfs).
- Publish target: a read-only file system; a full disk (tiny tmpfs) after the first file is in place.
- One real `airflow dags test` run with a full publish disk: the team gets the alert email, nothing
  unlisted is left, a re-run succeeds (marked dag).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.failures import PublishShareError, SisUnavailable, StoreUnavailable
from calpads.publish.writer import base_name, render_files
from tests.integration.reliability import (
    LEA,
    YEAR,
    assert_no_stray_files,
    can_mount,
    context,
    fill,
    history_snapshot,
    make_sis,
    remount,
    run_all,
    tmpfs,
)

ADMIN_URL = os.environ.get("CALPADS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def mountable(tmp_path):
    if not can_mount(tmp_path):
        pytest.skip("mounting a tmpfs is not permitted here")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # closed again when the socket closes: nothing listens there


def _terminate_on(engine: sa.Engine, marker: str, *, after: bool = False) -> list[int]:
    """When a statement containing marker runs on engine, terminate that connection's backend from
    another connection (a real PostgreSQL fault: the server ends the session)."""
    killed: list[int] = []
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")

    def kill(conn, cursor, statement, parameters, context, executemany):
        if marker in statement.lower() and not killed:
            pid = conn.connection.dbapi_connection.get_backend_pid()
            with admin.connect() as a:
                assert a.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            killed.append(pid)

    sa.event.listen(engine, "after_cursor_execute" if after else "before_cursor_execute", kill)
    return killed


def _terminating_cursors(url: str, marker: str) -> tuple[sa.Engine, list[int]]:
    """An engine whose DB-API cursors, when they execute a statement containing marker, first terminate their
    own backend from another connection (pg_terminate_backend): the SQL adapter streams through DB-API cursors,
    beneath SQLAlchemy's cursor events."""
    import psycopg2.extensions

    killed: list[int] = []
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")

    class TerminatingCursor(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):  # noqa: A002 - psycopg2's own parameter name
            text = query.decode() if isinstance(query, bytes) else str(query)
            if marker in text.lower() and not killed:
                pid = self.connection.get_backend_pid()
                with admin.connect() as a:
                    assert a.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
                killed.append(pid)
            return super().execute(query, vars)

    return sa.create_engine(url, connect_args={"cursor_factory": TerminatingCursor}), killed


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in Path(root).rglob("*.txt")}


# --------------------------------------------------------------------------- SIS
def test_sis_on_a_closed_port_fails_the_pull_and_leaves_nothing(tmp_path):
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    pub = tmp_path / "pub"
    dead = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{_closed_port()}/sis",
                            connect_args={"connect_timeout": 3})
    ctx = context(tmp_path, "manual__closed_port", pub, save_history=True)
    with pytest.raises(SisUnavailable, match="Connection refused"):   # the alert names the SIS
        pipeline.extract(ctx, dead)
    assert not pub.exists() or not any(pub.rglob("*"))
    assert not ctx.path(pipeline.RECORDS).exists()
    assert history_snapshot(store) == ([], [])
    # the SIS is back: the same run (a retry) succeeds
    sis = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"))
    out = run_all(ctx, sis, store)
    assert out["publish"]["records"] == 3 and out["save"] == {"saved": 3}
    assert_no_stray_files(pub)


def test_sis_backend_terminated_mid_pull_fails_the_pull_and_a_retry_succeeds(tmp_path, pg_database):
    sis = make_sis(sa.create_engine(pg_database))
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    pub = tmp_path / "pub"
    # The first query reading the programs table dies: the LEA, schools and calendar were read already.
    flaky, killed = _terminating_cursors(pg_database, "s_ca_stu_calpadsprograms_c")
    ctx = context(tmp_path, "manual__dropped", pub, save_history=True)
    # (pandas.read_sql wraps the driver's OperationalError in its DatabaseError; the alert names the SIS)
    with pytest.raises(SisUnavailable) as caught:
        pipeline.extract(ctx, flaky)
    assert isinstance(caught.value.__cause__, (sa.exc.OperationalError, pd.errors.DatabaseError))
    assert re.search("terminat|closed the connection", str(caught.value.__cause__)), caught.value.__cause__
    assert killed, "the fault was never injected"
    assert not ctx.path(pipeline.RECORDS).exists()
    assert not pub.exists() or not list(pub.rglob("*"))
    assert history_snapshot(store) == ([], [])
    flaky.dispose()
    out = run_all(ctx, sis, store)
    assert out["publish"]["records"] == 3 and out["save"] == {"saved": 3}
    assert_no_stray_files(pub)
    sis.dispose()


# --------------------------------------------------------------------------- store
def test_store_connection_terminated_mid_save_saves_nothing_then_the_retry_saves_once(tmp_path, pg_database):
    sis = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"))
    store = sa.create_engine(pg_database)
    pub = tmp_path / "pub"
    run_all(context(tmp_path, "manual__first", pub, save_history=True), sis, store)
    with sis.begin() as c:   # a change, so the second run has records to save
        c.exec_driver_sql("UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMENDDATE = '2026-01-15' WHERE ID = 10001")
    before = history_snapshot(store)
    assert [r[1:] for r in before[0]] == [("manual__first", 3)]

    ctx = context(tmp_path, "manual__second", pub, save_history=True)
    pipeline.extract(ctx, sis)
    pipeline.gate(ctx, run_date=ctx.scope.today, error_ceiling=1.0)
    pipeline.diff(ctx, store)
    pipeline.publish(ctx)
    flaky = sa.create_engine(pg_database)
    # The run row is inserted, then the connection dies before the records are copied.
    killed = _terminate_on(flaky, "insert into calpads_history_runs", after=True)
    with pytest.raises(Exception) as caught:
        pipeline.save_history(ctx, flaky)
    assert killed, "the fault was never injected"
    assert "terminat" in str(caught.value) or "closed" in str(caught.value), caught.value
    flaky.dispose()
    assert history_snapshot(store) == before          # not half: the run row went with the records
    assert_no_stray_files(pub)
    assert pipeline.save_history(ctx, store) == {"saved": 1}
    assert pipeline.save_history(ctx, store) == {"saved": 0}   # a second retry saves nothing
    runs, records = history_snapshot(store)
    assert [r[1:] for r in runs] == [("manual__first", 3), ("manual__second", 1)]
    assert len(records) == 4
    store.dispose()


def test_sqlite_store_on_a_full_disk_saves_nothing_then_the_retry_saves_once(tmp_path, mountable):
    sis = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"), students=40)
    pub = tmp_path / "pub"
    with tmpfs(tmp_path / "storefs", "1m") as fs:
        store = sa.create_engine(f"sqlite:///{fs}/store.db")
        run_all(context(tmp_path, "manual__first", pub, save_history=True), sis, store)
        before = history_snapshot(store)
        with sis.begin() as c:   # every record changes: 40 rows to save
            c.exec_driver_sql("UPDATE S_CA_STU_CALPADSPROGRAMS_C SET PROGRAMENDDATE = '2026-01-15'")
        ctx = context(tmp_path, "manual__second", pub, save_history=True)
        pipeline.extract(ctx, sis)
        pipeline.gate(ctx, run_date=ctx.scope.today, error_ceiling=1.0)
        pipeline.diff(ctx, store)
        pipeline.publish(ctx)
        filler = fill(fs, leave=0)
        with pytest.raises(StoreUnavailable, match="full|disk I/O"):
            pipeline.save_history(ctx, store)
        store.dispose()
        filler.unlink()
        assert history_snapshot(store) == before
        assert not [p for p in fs.iterdir() if p.name.endswith("-journal") and p.stat().st_size]
        assert pipeline.save_history(ctx, store) == {"saved": 40}
        runs, records = history_snapshot(store)
        assert [r[1:] for r in runs] == [("manual__first", 40), ("manual__second", 40)]
        assert len(records) == 80
        store.dispose()
    assert_no_stray_files(pub)


# --------------------------------------------------------------------------- publish target
def _up_to_diff(ctx: pipeline.RunContext, sis: sa.Engine, store: sa.Engine) -> None:
    pipeline.extract(ctx, sis)
    pipeline.gate(ctx, run_date=ctx.scope.today, error_ceiling=1.0)
    pipeline.diff(ctx, store)


def test_read_only_publish_root_publishes_nothing_then_the_retry_publishes(tmp_path, mountable):
    sis = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"))
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    with tmpfs(tmp_path / "pubfs", "16m") as pub:
        ctx = context(tmp_path, "manual__readonly", pub, save_history=True)
        _up_to_diff(ctx, sis, store)
        remount(pub, "ro")
        try:
            with pytest.raises(PublishShareError, match="Read-only"):
                pipeline.publish(ctx)
        finally:
            remount(pub, "rw")
        assert_no_stray_files(pub)
        assert not list(pub.rglob("*.txt")) and not list(pub.rglob("manifest.json"))
        assert history_snapshot(store) == ([], [])      # save_history never runs after a failed publish
        out = pipeline.publish(ctx)
        assert out["records"] == 3
        assert pipeline.save_history(ctx, store) == {"saved": 3}
        assert_no_stray_files(pub)


def test_publish_disk_full_after_the_first_file_leaves_no_file_then_the_retry_publishes(tmp_path, mountable):
    sis = make_sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"), students=300)
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    with tmpfs(tmp_path / "pubfs", "16m") as pub:
        ctx = context(tmp_path, "manual__diskfull", pub, save_history=True)
        _up_to_diff(ctx, sis, store)
        # Sizes of the files this run renders: room for the full file, not for the _AU file after it.
        sizes = render_files(pd.read_parquet(ctx.path(pipeline.DIFFED)), ctx.layout, tmp_path / "sizes",
                             base_name(ctx.layout, LEA, YEAR))
        full, au = sizes[0].bytes, sizes[1].bytes
        assert au > 16_384, "the files must be larger than the free-space margin"
        filler = fill(pub, leave=full + 8192)
        with pytest.raises(PublishShareError, match="No space left"):
            pipeline.publish(ctx)
        assert_no_stray_files(pub)
        assert not list(pub.rglob("*.txt")), "a file of a failed publish was left in place"
        filler.unlink()
        out = pipeline.publish(ctx)
        assert out["records"] == 300 and len(out["files"]) == 2
        assert pipeline.save_history(ctx, store) == {"saved": 300}
        assert_no_stray_files(pub)


# --------------------------------------------------------------------------- the alert path (Airflow)
def _pages(paths) -> int:
    """Bytes a tmpfs charges for these files (whole 4 KiB pages)."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in paths if p.is_file())


@pytest.mark.dag
def test_full_publish_disk_in_a_dag_run_alerts_the_team_and_a_rerun_succeeds(airflow_home, tmp_path, smtp_server,
                                                                            mountable):
    from tests.dags.dagrun import project_env, run_dag

    sis_url, store_url = f"sqlite:///{tmp_path}/sis.db", f"sqlite:///{tmp_path}/store.db"
    make_sis(sa.create_engine(sis_url), students=1500)
    # The same run in-process on scratch storage: how much room the report and the full file take.
    (tmp_path / "scratch" / "pub").mkdir(parents=True)   # a publish root exists before a run
    scratch = context(tmp_path / "scratch", "manual__measure", tmp_path / "scratch" / "pub")
    _up_to_diff(scratch, sa.create_engine(sis_url), sa.create_engine(f"sqlite:///{tmp_path}/scratch/store.db"))
    pipeline.publish(scratch)
    folder = Path(str(scratch.run_folder))
    report, full = _pages(folder.joinpath("report").rglob("*")), _pages(folder.glob("SPRG_*_2025-2026.txt"))
    au = _pages(folder.glob("SPRG_*_AU.txt"))
    margin = 64 * 1024
    assert au > 2 * margin
    with tmpfs(tmp_path / "pubfs", "16m") as pub:
        # Room for the validation report (the gate writes it) and the full file, not for the _AU file.
        filler = fill(pub, leave=report + full + margin)
        env = project_env(airflow_home, sis_url=sis_url, store_url=store_url, publish_root=pub,
                          work_root=tmp_path / "work", smtp_port=smtp_server.port)
        failed = run_dag(env, "calpads_sprg", "2026-04-20", {"academic_year": YEAR, "save_history": True})
        assert failed.state == "failed", failed.output[-3000:]
        assert failed.task_states["quality_gate"] == "success", failed.task_states
        assert failed.task_states["publish_files"] == "failed", failed.task_states
        assert failed.task_states["save_submission_history"] == "upstream_failed"
        alert = next((t for t in smtp_server.texts() if "publish_files" in t), None)
        assert alert is not None and "FAILED" in alert and "free space" in alert, smtp_server.texts()
        assert "No space left" in failed.output          # the log says why; the email points to it
        assert_no_stray_files(pub)
        assert not list(pub.rglob("*.txt"))
        assert history_snapshot(sa.create_engine(store_url)) == ([], [])

        filler.unlink()
        rerun = run_dag(env, "calpads_sprg", "2026-04-21", {"academic_year": YEAR, "save_history": True})
        assert rerun.state == "success", rerun.output[-3000:]
        assert_no_stray_files(pub)
        runs, records = history_snapshot(sa.create_engine(store_url))
        assert [r[2] for r in runs] == [1500] and len(records) == 1500
