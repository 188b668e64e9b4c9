"""Failures named by the part of the system that failed, so that an alert blames the right thing.

A stage raises one of these when something it depends on is unusable: the SIS, the history store
(``calpads_store``), the run's work folder, the publish share, the submission history's lock, the
mail server. The alert email (``calpads.alerts.messages``) names the part and says what to do. The
messages are written here and in the stages, from our own words, paths, run ids and the operating
system's or database driver's one-line reason for connection-level errors: never a record's values
(a driver's text for a failed statement can quote a row, so only its type is shown then).
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class PartFailure(RuntimeError):
    """A failure of one named part. ``part`` is the team's word for it, ``what_to_do`` the alert's advice."""

    part = "pipeline"
    what_to_do = "Open the task log from the link below; if it is unclear, ask district IT."


class SisUnavailable(PartFailure):
    part = "SIS"
    what_to_do = ("Nothing was built or published: ask district IT to check that the SIS database (or its API) is up "
                  "and that the SIS connection's login still works, then clear the task to retry.")


class StoreUnavailable(PartFailure):
    part = "history store"
    what_to_do = ("Nothing was saved. Ask district IT to check the calpads_store connection: its database must exist "
                  "and be reachable and writable (for SQLite, its folder must exist and have free space). Then "
                  "clear the task to retry.")


class WorkFolderError(PartFailure):
    part = "work folder"
    what_to_do = ("Ask district IT to check the folder of the calpads_work_root Variable: it must exist on every "
                  "worker, be writable by the Airflow user and have free space. Then clear the task to retry; if a "
                  "work file is missing (deleted after the retention period), clear the whole run.")


class PublishShareError(PartFailure):
    part = "publish share"
    what_to_do = ("Nothing partial was left in the publish folder. Ask district IT to check the share of the "
                  "calpads_publish_root Variable: it must be mounted, writable by the Airflow user and have free "
                  "space. Then clear the task to retry.")


class SubmissionInProgress(PartFailure):
    part = "submission history"
    what_to_do = ("Nothing was published or saved. Another run that saves history for the same file, LEA and year is "
                  "between its comparison and its save. Let it finish (or fail), then trigger this run again.")


class HistoryChanged(PartFailure):
    part = "submission history"
    what_to_do = ("Nothing was saved: another run was saved after this run compared against the history, so this "
                  "run's files are out of date. Do not upload them; trigger a new run (it compares against the "
                  "latest saved submission).")


class LeaMismatch(PartFailure):
    """The SIS read for the configured LEA holds another LEA's data (its PREFS district number): a deployment that
    serves several LEAs pointed one LEA's runs at another LEA's SIS. No retry can fix it."""

    part = "LEA configuration"
    what_to_do = ("Nothing was built or published. Ask district IT to check this LEA's SIS connection in the LEA "
                  "configuration (docs/leas.md): each LEA's runs must read that LEA's own SIS. Then trigger the run "
                  "again.")

    def __init__(self, configured: str, found: str):
        self.configured, self.found = configured, found
        super().__init__(f"The SIS read for LEA {configured} holds LEA {_lea_shown(found)}'s data (its district "
                         f"number): nothing was built or published. Check LEA {configured}'s SIS connection in the "
                         f"LEA configuration (docs/leas.md).")


def _lea_shown(value: str) -> str:
    """A district number as the message shows it: the SIS's own value when it looks like a code, else words."""
    return value if value.isdigit() and len(value) <= 14 else "an unrecognised district number"


def check_lea(configured: str | None, found: str) -> None:
    """Raise LeaMismatch when a run configured for an LEA (None: not configured) read another LEA's SIS."""
    if configured is not None and found.strip() != configured.strip():
        raise LeaMismatch(configured, found.strip())


class SummaryEmailFailed(PartFailure):
    part = "summary email"

    def __init__(self, message: str, *, files_ready: bool):
        super().__init__(message)
        self.files_ready = files_ready

    @property
    def what_to_do(self) -> str:  # type: ignore[override]
        check = ("Ask district IT to check the smtp_default connection (the mail server's address, port and "
                 "login).")
        if self.files_ready:
            return (f"Only the email failed: the files can be checked and uploaded. {check} The files, the "
                    f"manifest and the validation report are in the run folder named above.")
        return f"{check} Then see the run's other failed task: its alert says what to do."


def reason(exc: BaseException) -> str:
    """A one-line reason safe to show: the OS error's text, a connection-level driver message, else the type."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, "")
        return f"{exc.strerror or type(exc).__name__}{f' ({name})' if name else ''}"
    try:
        import sqlalchemy as sa

        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            first = str(getattr(exc, "orig", None) or "").strip().splitlines()
            return f"{type(exc).__name__}: {first[0][:200]}" if first else type(exc).__name__
    except ImportError:   # pragma: no cover - SQLAlchemy is a dependency
        pass
    return f"{type(exc).__name__} (details in the task log)"


@contextmanager
def failing_part(cls: type[PartFailure], doing: str,
                 catch: tuple[type[BaseException], ...] = (OSError,)) -> Iterator[None]:
    """Re-raise an error of ``catch`` inside the block as ``cls`` with "<doing>: <reason>".
    A PartFailure raised inside keeps its own part (e.g. the store inside the SIS pull)."""
    try:
        yield
    except PartFailure:
        raise
    except catch as exc:
        raise cls(f"{doing}: {reason(exc)}") from exc


def db_errors() -> tuple[type[BaseException], ...]:
    """The errors of a database client: SQLAlchemy's, and pandas' wrapper of a DB-API error (read_sql)."""
    import pandas as pd
    import sqlalchemy as sa

    return (sa.exc.DBAPIError, pd.errors.DatabaseError)


def store_errors(doing: str) -> Callable[[F], F]:
    """Decorator: a database error inside the method is the history store's (StoreUnavailable)."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with failing_part(StoreUnavailable, f"The history store (calpads_store) could not {doing}",
                              catch=db_errors()):
                return fn(*args, **kwargs)
        return inner  # type: ignore[return-value]
    return wrap
