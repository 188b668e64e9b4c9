"""What every SIS API source shares: HTTP with retries, OAuth2 tokens, resumable paging, data-flow checks.

Resilience rules (docs/sis-sources.md, "Resilience"; why a client of our own: docs/adr/0001-own-http-client.md):
- every call has a (connect, read) timeout;
- 429 and 5xx (and dropped connections) are retried with exponential backoff and
  jitter, honouring ``Retry-After`` (seconds or an HTTP date), bounded in attempts
  and in total waiting time;
- a 401 drops the cached token and retries once with a fresh one (tokens expire
  mid-pull);
- pages are checkpointed as Parquet files in the run's work folder, so a task
  retry after a failure on page 400 of 500 fetches page 400 onwards only.

FERPA: log lines and exception texts carry method, path (never the query
string), status, page numbers and counts; never headers, tokens, secrets or
response bodies.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import requests
import tenacity

from calpads.private_files import replacing, write_private

log = logging.getLogger("calpads.sources.api")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _Retryable(Exception):
    """One attempt's failure worth another try: a retry status (``resp`` holds Retry-After) or no answer."""

    def __init__(self, status: int | None, resp: requests.Response | None):
        super().__init__(f"HTTP {status}" if status is not None else "no answer")
        self.status, self.resp = status, resp


@dataclass(frozen=True)
class ApiConnection:
    """What a source client needs from its connection, already read the Airflow way by the vendor's hook
    (calpads_airflow.hooks): the server URL, the credentials and the extras by plain name."""

    base_url: str
    login: str | None = None
    password: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ApiSourceError(RuntimeError):
    """A SIS API call failed for good (said in the coordinator's words, no student data)."""


class AccessDenied(ApiSourceError):
    """The SIS refused the credentials or the resource (401 after a fresh token, or 403)."""


class MissingSourceData(ApiSourceError):
    """The chosen source cannot provide data a record type needs."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6            # per request, the first try included
    backoff_base: float = 0.5        # seconds; attempt n waits about base * 2**n
    backoff_cap: float = 60.0        # longest single wait
    max_total_wait: float = 600.0    # longest total waiting for one request
    connect_timeout: float = 10.0
    read_timeout: float = 120.0

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> RetryPolicy:
        kw: dict[str, Any] = {}
        for name, conv in (("max_attempts", int), ("backoff_base", float), ("backoff_cap", float),
                           ("max_total_wait", float), ("connect_timeout", float), ("read_timeout", float)):
            if extra.get(name) not in (None, ""):
                kw[name] = conv(extra[name])
        return cls(**kw)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: an integer, or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _path(url: str) -> str:
    return urlsplit(url).path


class TokenProvider:
    """Gives the Authorization header value; ``invalidate`` after a 401."""

    def header(self) -> dict[str, str]:  # pragma: no cover - interface
        raise NotImplementedError

    def invalidate(self) -> None:
        pass


class OAuthClientCredentials(TokenProvider):
    """OAuth2 client-credentials grant with HTTP Basic client authentication (RFC 6749 §4.4, §2.3.1).

    The token is cached until shortly before ``expires_in`` and fetched again on
    a 401. PowerSchool: POST {server}/oauth/access_token with Basic base64(id:secret)
    and ``grant_type=client_credentials``; the answer is {"access_token", "token_type":
    "Bearer", "expires_in": "<seconds, as a string>"} (see
    https://ps.powerschool-docs.com/pssis-admin/latest/view-oauth-client-credentials and
    https://apis.io/examples/powerschool/powerschool-oauth-token-request/).
    OneRoster 1.2 uses the same grant (IMS OneRoster Rostering REST binding 1.2,
    https://www.imsglobal.org/sites/default/files/spec/oneroster/v1p2/rostering-restbinding/OneRosterv1p2RosteringService_RESTBindv1p0.html).
    """

    def __init__(self, http: HttpClient, token_url: str, client_id: str, client_secret: str,
                 scope: str | None = None, early_refresh: float = 60.0):
        self._http = http
        self._url = token_url
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._scope = scope
        self._early = early_refresh
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def header(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        data = {"grant_type": "client_credentials"}
        if self._scope:
            data["scope"] = self._scope
        resp = self._http.send("POST", self._url, auth_header=False, data=data, ok=(400, 401, 403), headers={
            "Authorization": f"Basic {self._basic}",
            "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
        })
        if resp.status_code in (400, 401, 403):
            raise AccessDenied(
                f"The SIS refused the pipeline's client ID and secret (token request answered {resp.status_code}): "
                "check the connection's client ID and secret, or ask district IT whether the plugin/app is enabled."
            )
        body = _json(resp, self._url)
        token = body.get("access_token")
        if not token:
            raise ApiSourceError("The SIS token answer had no access_token.")
        self._token = str(token)
        try:
            ttl = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            ttl = 3600.0
        # refresh a little early, but never earlier than half the lifetime
        self._expires_at = time.monotonic() + max(ttl - self._early, ttl / 2)
        self.fetches += 1
        log.info("obtained an API access token (valid %.0f s)", ttl)


class StaticHeader(TokenProvider):
    """A fixed credential header (Aeries: AERIES-CERT)."""

    def __init__(self, name: str, value: str):
        self._h = {name: value}

    def header(self) -> dict[str, str]:
        return dict(self._h)


def _json(resp: requests.Response, url: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise ApiSourceError(f"The SIS answered {_path(url)} with something that is not JSON "
                             f"(HTTP {resp.status_code}).") from None


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    refreshed_tokens: int = 0
    waited_seconds: float = 0.0


class HttpClient:
    """requests.Session with timeouts, retries and token refresh. Thread-safe enough for one pull."""

    def __init__(self, base_url: str, policy: RetryPolicy | None = None, verify: bool | str = True,
                 sleep: Callable[[float], None] = time.sleep, user_agent: str = "calpads-pipeline"):
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.session = requests.Session()
        self.session.verify = verify
        self.session.headers.update({"Accept": "application/json", "User-Agent": user_agent})
        self.auth: TokenProvider | None = None
        self.sleep = sleep
        self.stats = RequestStats()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def send(self, method: str, path: str, *, auth_header: bool = True, params: dict[str, Any] | None = None,
             json_body: Any = None, data: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None, ok: Iterable[int] = ()) -> requests.Response:
        """One logical request: retried on 429/5xx/connection errors, refreshed once on 401.

        Returns the response for 2xx and for the statuses in ``ok``; raises
        AccessDenied (401/403) or ApiSourceError otherwise. The retry loop is
        tenacity's: attempts and total waiting bounded by the policy, each wait the
        policy's backoff or the server's ``Retry-After``.
        """
        url, p, ok_statuses = self.url(path), self.policy, frozenset(ok)
        refreshed = False   # one token refresh per logical request, not counted as an attempt
        tries = 0

        def attempt() -> requests.Response:
            nonlocal refreshed, tries
            tries += 1
            while True:
                resp, status = self._request(method, url, auth_header, params, json_body, data, headers, tries)
                if status is not None and (200 <= status < 300 or status in ok_statuses):
                    return resp  # type: ignore[return-value]
                if status == 401 and auth_header and self.auth is not None and not refreshed:
                    # The token expired or was revoked mid-pull: fetch a new one, once.
                    refreshed = True
                    self.stats.refreshed_tokens += 1
                    log.info("%s %s -> 401: fetching a new access token", method, _path(url))
                    self.auth.invalidate()
                    continue
                if status in (401, 403):
                    raise AccessDenied(f"The SIS refused {method} {_path(url)} (HTTP {status}).")
                if status is not None and status not in RETRY_STATUSES:
                    raise ApiSourceError(f"The SIS answered {method} {_path(url)} with HTTP {status}.")
                raise _Retryable(status, resp)

        def wait(state: tenacity.RetryCallState) -> float:
            failed: _Retryable = state.outcome.exception()  # type: ignore[union-attr,assignment]
            delay = p.backoff(state.attempt_number - 1)
            if failed.resp is not None:
                ra = retry_after_seconds(failed.resp.headers.get("Retry-After"))
                if ra is not None:
                    delay = max(delay, ra) if failed.status == 429 else ra
            return delay

        def give_up(state: tenacity.RetryCallState) -> None:
            failed: _Retryable = state.outcome.exception()  # type: ignore[union-attr,assignment]
            if state.attempt_number >= p.max_attempts:
                what = f"HTTP {failed.status}" if failed.status is not None else "no answer"
                raise ApiSourceError(f"The SIS kept failing on {method} {_path(url)} ({what} after "
                                     f"{state.attempt_number} attempts); the pull can be retried and resumes where "
                                     "it stopped.")
            raise ApiSourceError(f"The SIS asked the pipeline to wait longer than {p.max_total_wait:.0f} s on "
                                 f"{method} {_path(url)}; try again later.")

        def before_sleep(state: tenacity.RetryCallState) -> None:
            failed: _Retryable = state.outcome.exception()  # type: ignore[union-attr,assignment]
            log.info("%s %s -> %s: retrying in %.2f s (attempt %d/%d)", method, _path(url),
                     failed.status if failed.status is not None else "no answer", state.upcoming_sleep,
                     state.attempt_number, p.max_attempts)
            self.stats.retries += 1
            self.stats.waited_seconds += state.upcoming_sleep

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            wait=wait,
            # waiting, not request time, is bounded: idle_for is the waits so far, upcoming_sleep the next one
            stop=tenacity.stop_after_attempt(p.max_attempts)
            | (lambda s: s.idle_for + s.upcoming_sleep > p.max_total_wait),
            sleep=lambda seconds: self.sleep(seconds),
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
        return retrying(attempt)

    def _request(self, method: str, url: str, auth_header: bool, params: dict[str, Any] | None, json_body: Any,
                 data: dict[str, Any] | None, headers: dict[str, str] | None, attempt: int
                 ) -> tuple[requests.Response | None, int | None]:
        """One HTTP request with the policy's timeouts: (response, status), or (None, None) when no answer came."""
        p = self.policy
        h = dict(headers or {})
        if auth_header and self.auth is not None:
            h.update(self.auth.header())
        started = time.monotonic()
        self.stats.requests += 1
        try:
            resp = self.session.request(method, url, params=params, json=json_body, data=data, headers=h,
                                        timeout=(p.connect_timeout, p.read_timeout))
        except (requests.ConnectionError, requests.Timeout) as exc:
            log.warning("%s %s: %s (attempt %d/%d)", method, _path(url), type(exc).__name__, attempt, p.max_attempts)
            return None, None
        log.debug("%s %s -> %d (%.3f s, attempt %d)", method, _path(url), resp.status_code, time.monotonic() - started,
                  attempt)
        return resp, resp.status_code

    def get_json(self, path: str, **kw: Any) -> Any:
        resp = self.send("GET", path, **kw)
        return _json(resp, self.url(path))

    def post_json(self, path: str, **kw: Any) -> Any:
        resp = self.send("POST", path, **kw)
        return _json(resp, self.url(path))

    def close(self) -> None:
        self.session.close()


# -- resumable paging --------------------------------------------------------------------


@dataclass
class PageStore:
    """Checkpoint of one paged dataset: ``page-000001.parquet`` ... plus ``meta.json``.

    The dataset key hashes the request (path, filters, page size), so a changed
    request never reuses old pages; a changed record count discards them too
    (the SIS changed between the attempts: start that dataset again).
    """

    folder: Path
    fetched_pages: list[int] = field(default_factory=list)   # fetched over HTTP by this attempt
    reused_pages: list[int] = field(default_factory=list)    # read from the checkpoint

    @classmethod
    def for_dataset(cls, work_dir: str | os.PathLike[str], source: str, name: str,
                    request: dict[str, Any]) -> PageStore:
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:12]
        folder = Path(work_dir) / "api_pages" / source / f"{name}-{digest}"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(folder)

    def page_path(self, page: int) -> Path:
        return self.folder / f"page-{page:06d}.parquet"

    def read_meta(self) -> dict[str, Any] | None:
        f = self.folder / "meta.json"
        return json.loads(f.read_text()) if f.exists() else None

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_private(self.folder / "meta.json", json.dumps(meta).encode())

    def reset(self) -> None:
        for f in self.folder.glob("page-*.parquet"):
            f.unlink()

    def has(self, page: int) -> bool:
        return self.page_path(page).exists()

    def save(self, page: int, rows: list[dict[str, Any]], columns: list[str]) -> None:
        df = pd.DataFrame([[_cell(r.get(c)) for c in columns] for r in rows], columns=columns, dtype=object)
        with replacing(self.page_path(page)) as fh:
            df.to_parquet(fh, index=False)

    def load(self, pages: Iterable[int], columns: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in pages:
            df = pd.read_parquet(self.page_path(page))
            for rec in df.astype(object).to_dict("records"):
                out.append({c: (None if _isna(rec.get(c)) else rec.get(c)) for c in columns})
        return out


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _cell(v: Any) -> str | None:
    """Pages keep every value as text (None = absent); types are restored by the contract's column types."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def paged_fetch(store: PageStore, *, count: int | None, page_size: int, columns: list[str],
                fetch_page: Callable[[int], list[dict[str, Any]]], max_pages: int = 100_000,
                deadline: float | None = None, label: str = "") -> list[dict[str, Any]]:
    """Fetch pages 1..n (n from ``count``, or until a short page when the API gives no count),
    skipping pages already in the checkpoint. Bounded by ``max_pages`` and ``deadline``."""
    return [row for page in iter_pages(store, count=count, page_size=page_size, columns=columns,
                                       fetch_page=fetch_page, max_pages=max_pages, deadline=deadline, label=label)
            for row in page]


def iter_pages(store: PageStore, *, count: int | None, page_size: int, columns: list[str],
               fetch_page: Callable[[int], list[dict[str, Any]]], max_pages: int = 100_000,
               deadline: float | None = None, label: str = "") -> Iterator[list[dict[str, Any]]]:
    """paged_fetch one page at a time (each as read back from its checkpoint file): for datasets too large
    to hold as rows (daily attendance, calpads.sources.attendance_pages)."""
    meta = store.read_meta()
    if meta is None or meta.get("count") != count or meta.get("page_size") != page_size:
        store.reset()
        meta = {"count": count, "page_size": page_size, "last_page": None}
        store.write_meta(meta)
    if count is not None:
        n_pages = max(1, -(-count // page_size)) if count else 0
    else:
        n_pages = meta.get("last_page") or max_pages
    if n_pages > max_pages:
        raise ApiSourceError(f"{label}: {n_pages} pages exceed the limit of {max_pages}; raise page_size.")
    for page in range(1, n_pages + 1):
        if deadline is not None and time.monotonic() > deadline:
            raise ApiSourceError(f"{label}: the pull ran past its time limit at page {page}; retry to resume.")
        if store.has(page):
            store.reused_pages.append(page)
            yield store.load([page], columns)
            if count is None and meta.get("last_page") == page:
                break
            continue
        rows = fetch_page(page)
        store.save(page, rows, columns)
        store.fetched_pages.append(page)
        yield store.load([page], columns)
        if count is None and len(rows) < page_size:
            meta["last_page"] = page
            store.write_meta(meta)
            break
    else:
        if count is None and n_pages >= max_pages:
            raise ApiSourceError(f"{label}: no short page after {max_pages} pages; stopping.")
    if store.reused_pages:
        log.info("%s: %d page(s) reused from the checkpoint, %d fetched", label, len(store.reused_pages),
                 len(store.fetched_pages))


# -- data flows (permissions) --------------------------------------------------------------

FLOWS = ("read_enrollment", "read_attendance", "read_programs", "write_participation")


@dataclass(frozen=True)
class FlowCheck:
    """Whether one data flow the configuration needs is granted, in the integration team's words."""

    flow: str                 # one of FLOWS
    resource: str             # the SIS table / endpoint / security area
    granted: bool | None      # None = cannot be verified over this API
    message: str


def read_denied_message(what: str, resource: str, grantee: str) -> str:
    return (f"The pipeline cannot read the {what} ({resource}): ask district IT to grant the {grantee} "
            f"read access to {resource}")


def write_denied_message(what: str, resource: str, grantee: str) -> str:
    return (f"The pipeline cannot write {what} ({resource}): ask district IT to grant the {grantee} "
            f"write access to {resource}")


def check_data_flows(hook: Any, flows: Iterable[str]) -> list[FlowCheck]:
    """Call each endpoint the configured flows need and report which are granted.

    ``hook`` is one of the calpads_airflow SIS hooks (or a source client with a
    ``check_flows`` method)."""
    client = hook.get_client() if hasattr(hook, "get_client") else hook
    wanted = list(dict.fromkeys(flows))
    unknown = [f for f in wanted if f not in FLOWS]
    if unknown:
        raise ValueError(f"unknown data flow(s) {unknown}; known: {', '.join(FLOWS)}")
    return client.check_flows(wanted)
