"""Unit tests of the API plumbing: Retry-After, backoff bounds, resumable paging without a count."""

from __future__ import annotations

import email.utils
import http.server
import threading
import time

import pytest

from calpads.sources.api_common import (
    AccessDenied,
    ApiSourceError,
    HttpClient,
    PageStore,
    RetryPolicy,
    TokenProvider,
    paged_fetch,
    retry_after_seconds,
)


def test_retry_after_seconds_and_http_date():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(email.utils.formatdate(1_000_030, usegmt=True), now=1_000_000) == pytest.approx(30)
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_backoff_grows_and_is_capped_with_jitter():
    p = RetryPolicy(backoff_base=1.0, backoff_cap=8.0)
    for attempt, ceiling in ((0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (9, 8.0)):
        waits = [p.backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jitter


def test_paging_without_count_resumes_after_a_failure(tmp_path):
    rows = [{"k": str(i)} for i in range(23)]
    calls: list[int] = []

    def fetch(page: int, fail_on: int | None = None) -> list[dict[str, str]]:
        calls.append(page)
        if page == fail_on:
            raise ApiSourceError("boom")
        return rows[(page - 1) * 5: page * 5]

    store = PageStore.for_dataset(tmp_path, "t", "rows", {"q": 1})
    with pytest.raises(ApiSourceError):
        paged_fetch(store, count=None, page_size=5, columns=["k"], fetch_page=lambda p: fetch(p, fail_on=3))
    assert calls == [1, 2, 3]
    calls.clear()
    store = PageStore.for_dataset(tmp_path, "t", "rows", {"q": 1})
    out = paged_fetch(store, count=None, page_size=5, columns=["k"], fetch_page=fetch)
    assert out == rows and calls == [3, 4, 5] and store.reused_pages == [1, 2]
    calls.clear()
    store = PageStore.for_dataset(tmp_path, "t", "rows", {"q": 1})
    assert paged_fetch(store, count=None, page_size=5, columns=["k"], fetch_page=fetch) == rows and calls == []


def test_a_changed_count_discards_the_checkpoint(tmp_path):
    store = PageStore.for_dataset(tmp_path, "t", "rows", {})
    paged_fetch(store, count=4, page_size=2, columns=["k"], fetch_page=lambda p: [{"k": "a"}, {"k": "b"}])
    calls: list[int] = []
    store = PageStore.for_dataset(tmp_path, "t", "rows", {})
    paged_fetch(store, count=6, page_size=2, columns=["k"], fetch_page=lambda p: calls.append(p) or [{"k": "c"}] * 2)
    assert calls == [1, 2, 3]


def test_hook_extras_are_read_by_plain_name_and_blanks_dropped():
    """Airflow 3's connection form saves extras by their plain names; a field left empty arrives blank."""
    from types import SimpleNamespace

    from calpads_airflow.hooks.aeries import AeriesHook

    conn = SimpleNamespace(extra_dejson={"database_year": "2025", "page_size": 250, "max_attempts": "",
                                         "subdistricts": None})
    assert AeriesHook.extras(conn) == {"database_year": "2025", "page_size": 250}


def test_the_sis_connection_types_are_registered_with_airflow():
    """The provider entry point (pyproject) makes Airflow list the connection types and their form fields."""
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    behaviours = pm.field_behaviours
    assert behaviours["calpads_aeries"]["relabeling"]["password"] == "AERIES-CERT certificate"
    assert {"calpads_powerschool", "calpads_oneroster"} <= set(behaviours)
    assert "extra__calpads_aeries__subdistricts" in pm.connection_form_widgets


@pytest.mark.parametrize(("hook", "host", "schema", "port", "expected"), [
    ("aeries", "district.aeries.net/admin/api/", None, None, "https://district.aeries.net/admin"),
    ("aeries", "https://district.aeries.net/admin", None, None, "https://district.aeries.net/admin"),
    ("powerschool", "http://127.0.0.1:8080/", None, None, "http://127.0.0.1:8080"),
    ("powerschool", "ps.district.example", "http", 8443, "http://ps.district.example:8443"),
    ("oneroster", "", None, None, ""),
])
def test_hook_base_url(hook, host, schema, port, expected):
    """The server URL as Airflow's HTTP hooks build it (scheme in the host, else schema or https; the port);
    Aeries's hook drops a trailing /api."""
    from types import SimpleNamespace

    from calpads_airflow.registry import hooks

    cls = next(h for h in hooks() if h.__module__ == f"calpads_airflow.hooks.{hook}")
    assert cls.base_url(SimpleNamespace(host=host, schema=schema, port=port)) == expected


def test_aeries_program_record_id_is_code_and_start_and_survives_a_bad_code():
    from calpads.sources.aeries_api import program_record_id

    assert program_record_id("144", "2025-08-13") == 14420250813
    assert program_record_id("101", None) == 10100000000
    odd = program_record_id("A1X", "2025-08-13")           # not a CALPADS code: held back by the gate later
    assert str(odd).endswith("20250813") and len(str(odd)) == 12
    assert odd == program_record_id("A1X", "2025-08-13") != program_record_id("B2Y", "2025-08-13")


# -- HttpClient: retries (tenacity), Retry-After, token refresh, bounds ------------------------------------


class _Script(http.server.BaseHTTPRequestHandler):
    """Answers each GET with the next (status, headers) of the server's script; 200 {"ok": true} after it."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        script, seen = self.server.script, self.server.seen  # type: ignore[attr-defined]
        seen.append(self.headers.get("Authorization"))
        status, headers = script.pop(0) if script else (200, {})
        body = b'{"ok": true}'
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    server.script, server.seen = [], []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server, sleeps: list[float], **policy) -> HttpClient:
    policy = {"backoff_base": 0.01, "backoff_cap": 0.02, "max_attempts": 4, **policy}
    return HttpClient(f"http://127.0.0.1:{server.server_address[1]}", RetryPolicy(**policy), sleep=sleeps.append)


def test_retry_after_in_seconds_and_as_an_http_date_is_waited(scripted):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    scripted.script += [(429, {"Retry-After": "3"}), (503, {"Retry-After": when}), (500, {})]
    sleeps: list[float] = []
    client = _client(scripted, sleeps)
    assert client.get_json("/x") == {"ok": True}
    assert sleeps[0] == 3.0                       # 429: the larger of backoff and Retry-After
    assert 27 <= sleeps[1] <= 30                  # 5xx: Retry-After as given (an HTTP date)
    assert 0.005 <= sleeps[2] <= 0.02             # no Retry-After: the backoff
    assert client.stats.retries == 3 and client.stats.requests == 4
    assert client.stats.waited_seconds == pytest.approx(sum(sleeps))


def test_attempts_are_bounded_and_the_error_says_the_pull_resumes(scripted):
    scripted.script += [(503, {})] * 10
    sleeps: list[float] = []
    with pytest.raises(ApiSourceError, match=r"kept failing on GET /x \(HTTP 503 after 4 attempts\).*resumes"):
        _client(scripted, sleeps).get_json("/x")
    assert len(sleeps) == 3 and len(scripted.seen) == 4


def test_total_waiting_is_capped(scripted):
    scripted.script += [(429, {"Retry-After": "40"}), (429, {"Retry-After": "40"})]
    sleeps: list[float] = []
    with pytest.raises(ApiSourceError, match="wait longer than 60 s on GET /x"):
        _client(scripted, sleeps, max_total_wait=60).get_json("/x")
    assert sleeps == [40.0]   # the second 40 s would pass the cap: no sleep, no third request
    assert len(scripted.seen) == 2


def test_a_401_fetches_a_new_token_once_without_using_an_attempt(scripted):
    class Tokens(TokenProvider):
        def __init__(self):
            self.n = 0

        def header(self):
            return {"Authorization": f"Bearer t{self.n}"}

        def invalidate(self):
            self.n += 1

    scripted.script += [(401, {}), (503, {}), (503, {}), (503, {})]
    sleeps: list[float] = []
    client = _client(scripted, sleeps)
    client.auth = Tokens()
    assert client.get_json("/x") == {"ok": True}     # 401 + 3 x 503 + 200: the refresh used no attempt
    assert scripted.seen == ["Bearer t0", "Bearer t1", "Bearer t1", "Bearer t1", "Bearer t1"]
    assert client.stats.refreshed_tokens == 1 and client.stats.retries == 3
    scripted.script += [(401, {}), (401, {})]
    with pytest.raises(AccessDenied, match="refused GET /y"):
        client.get_json("/y")                          # a second 401 after the fresh token: refused


def test_no_answer_is_retried_then_reported(scripted):
    sleeps: list[float] = []
    port = scripted.server_address[1]
    scripted.shutdown()
    scripted.server_close()
    client = HttpClient(f"http://127.0.0.1:{port}", RetryPolicy(backoff_base=0.01, max_attempts=3, connect_timeout=1),
                        sleep=sleeps.append)
    with pytest.raises(ApiSourceError, match=r"\(no answer after 3 attempts\)"):
        client.get_json("/x")
    assert len(sleeps) == 2
