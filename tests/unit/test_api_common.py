"""Unit tests of the API plumbing: Retry-After, backoff bounds, resumable paging without a count."""

from __future__ import annotations

import email.utils

import pytest

from calpads.sources.api_common import ApiSourceError, PageStore, RetryPolicy, paged_fetch, retry_after_seconds


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


def test_connection_extras_reads_the_ui_forms_prefixed_names():
    from types import SimpleNamespace

    from calpads.sources.api_common import connection_extras

    conn = SimpleNamespace(extra_dejson={"extra__calpads_aeries__database_year": "2025",
                                         "extra__calpads_aeries__page_size": "", "page_size": 250,
                                         "extra__calpads_aeries__max_attempts": "3", "max_attempts": 5})
    assert connection_extras(conn) == {"database_year": "2025", "page_size": 250, "max_attempts": 5}


def test_the_sis_connection_types_are_registered_with_airflow():
    """The provider entry point (pyproject) makes Airflow list the connection types and their form fields."""
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    behaviours = pm.field_behaviours
    assert behaviours["calpads_aeries"]["relabeling"]["password"] == "AERIES-CERT certificate"
    assert {"calpads_powerschool", "calpads_oneroster"} <= set(behaviours)
    assert "extra__calpads_aeries__subdistricts" in pm.connection_form_widgets


@pytest.mark.parametrize(("host", "schema", "port", "strip", "expected"), [
    ("district.aeries.net/admin/api/", None, None, "/api", "https://district.aeries.net/admin"),
    ("http://127.0.0.1:8080/", None, None, "", "http://127.0.0.1:8080"),
    ("ps.district.example", "http", 8443, "", "http://ps.district.example:8443"),
    ("", None, None, "", ""),
])
def test_connection_base_url(host, schema, port, strip, expected):
    from types import SimpleNamespace

    from calpads.sources.api_common import connection_base_url

    assert connection_base_url(SimpleNamespace(host=host, schema=schema, port=port), strip) == expected


def test_aeries_program_record_id_is_code_and_start_and_survives_a_bad_code():
    from calpads.sources.aeries_api import program_record_id

    assert program_record_id("144", "2025-08-13") == 14420250813
    assert program_record_id("101", None) == 10100000000
    odd = program_record_id("A1X", "2025-08-13")           # not a CALPADS code: held back by the gate later
    assert str(odd).endswith("20250813") and len(str(odd)) == 12
    assert odd == program_record_id("A1X", "2025-08-13") != program_record_id("B2Y", "2025-08-13")
