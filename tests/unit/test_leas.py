"""The LEA file (calpads.leas): what a county office writes, and every mistake named with its entry."""

from __future__ import annotations

from collections import Counter

import pytest

from calpads.leas import FILE_TYPES, LeaConfig, LeaConfigError, load_leas, parse_leas
from tests.conftest import ROOT

THREE = ROOT / "tests" / "fixtures" / "leas_three.yaml"
APIS = ("powerschool_api", "aeries_api", "oneroster")


def entry(code: str = "5610001", **extra) -> dict:
    return {"code": code, "name": f"LEA {code}", "sis": {"source": "sql", "conn_id": f"sis_db_{code}"},
            "emails": {"team": [f"team@{code}.example"]}, **extra}


def problems(document: dict) -> str:
    with pytest.raises(LeaConfigError) as caught:
        parse_leas(document, known_sources=APIS)
    return str(caught.value)


def test_the_three_lea_file_reads_as_written():
    leas = load_leas(THREE, known_sources=APIS)
    assert leas.codes() == ["5610001", "5610002", "5610003"]
    alder, birch, cedar = leas.leas
    assert alder.files == FILE_TYPES and alder.timezone == "America/Los_Angeles"
    assert alder.cron("SPRG") == "0 2 * * *"                              # the defaults' schedule
    assert birch.cron("SPRG") == "30 3 * * *" and birch.cron("SENR") is None   # its own replaces the default
    assert cedar.sis_source == "powerschool_api" and cedar.files == ("SPRG", "SENR") and cedar.queue == "lea_5610003"
    assert cedar.dag_id("calpads_sprg") == "calpads_sprg__5610003"
    assert leas.get("5610002") is birch


def test_recipients_are_the_leas_own_and_a_blank_role_falls_back_to_its_own_team():
    birch = load_leas(THREE, known_sources=APIS).get("5610002")
    assert birch.recipients() == ("calpads@birch.example",)
    assert birch.recipients(("coordinator",)) == ("coordinator@birch.example",)
    assert birch.recipients(("it",)) == ("calpads@birch.example",)
    assert birch.recipients(("it", "coordinator")) == ("calpads@birch.example", "coordinator@birch.example")


def test_the_single_lea_keeps_todays_ids_and_connections():
    single = LeaConfig.single()
    assert not single.listed and single.dag_id("calpads_sprg") == "calpads_sprg"
    assert (single.sis_conn_id, single.store_conn_id) == ("sis_db", "calpads_store")


@pytest.mark.parametrize(("change", "words"), [
    ({"code": "561001"}, "LEA entry 1: code must be the LEA's 7-digit CDS code"),
    ({"code": 5610001}, "LEA entry 1: code must be the LEA's 7-digit CDS code"),
    ({"name": " "}, "LEA 5610001: name is required"),
    ({"sis": {"source": "skyward", "conn_id": "x"}}, "LEA 5610001: sis.source must be one of"),
    ({"sis": {"source": "sql"}}, "LEA 5610001: sis.conn_id must name the Airflow connection"),
    ({"emails": {}}, "LEA 5610001: emails.team is required"),
    ({"emails": {"team": ["not an address"]}}, "LEA 5610001: emails.team must be a list of email addresses"),
    ({"emails": {"team": ["a@b.example"], "principal": ["p@b.example"]}}, "emails.principal is not a role"),
    ({"files": ["SPRG", "CRSE"]}, "LEA 5610001: files must list some of SPRG, SENR, STAS, LEAP"),
    ({"schedule": "every night"}, "schedule SPRG: 'every night' is not a file type with a valid cron"),
    ({"timezone": "Pacific"}, "timezone 'Pacific' is not a known time zone"),
    ({"pool_slots": 0}, "pool_slots must be a whole number of at least 1"),
    ({"queue": "a queue"}, "queue must be a Celery queue name"),
    ({"sis_password": "x"}, "LEA 5610001: unknown setting 'sis_password'"),
])
def test_each_mistake_is_named_with_its_entry(change, words):
    assert words in problems({"leas": [{**entry(), **change}]})


def test_every_problem_of_the_file_is_listed_at_once():
    text = problems({"leas": [entry(name=""), entry("5610002", files=[]), entry("5610003")]})
    assert "has 2 problem(s)" in text and "LEA 5610001: name" in text and "LEA 5610002: files" in text


def test_two_leas_never_share_a_code_or_a_publish_folder():
    assert "same code '5610001'" in problems({"leas": [entry(), entry()]})
    shared = {"publish_root": "/srv/out/"}
    assert "same publish_root '/srv/out'" in problems(
        {"leas": [entry(**shared), entry("5610002", publish_root="/srv/out")]})


def test_defaults_may_not_carry_what_is_each_leas_own():
    assert "defaults: unknown or per-LEA-only setting 'emails'" in problems(
        {"defaults": {"emails": {"team": ["a@b.example"]}}, "leas": [entry()]})


def test_a_file_that_is_not_yaml_or_not_there_says_so(tmp_path):
    bad = tmp_path / "leas.yaml"
    bad.write_text("leas: [\n  - code: '1'\n  name")
    with pytest.raises(LeaConfigError, match="not valid YAML at line"):
        load_leas(bad)
    with pytest.raises(LeaConfigError, match="cannot be read"):
        load_leas(tmp_path / "missing.yaml")


def test_shards_are_stable_and_spread_a_states_leas():
    leas = [LeaConfig(code=f"{n:07d}", name="x") for n in range(1000, 2000)]
    shards = Counter(lea.shard(16) for lea in leas)
    assert set(shards) == set(range(16)) and max(shards.values()) < 2 * 1000 / 16
    assert LeaConfig(code="5610001", name="renamed").shard(16) == LeaConfig(code="5610001", name="x").shard(16)


def test_leas_sharing_a_sis_connection_share_its_pool():
    doc = {"leas": [entry(), entry("5610002", pool_slots=6)]}
    doc["leas"][1]["sis"]["conn_id"] = "sis_db_5610001"
    assert parse_leas(doc).pools() == [("sis__sis_db_5610001", 6, "SIS reads of LEA 5610001, 5610002")]


def test_the_example_lea_file_of_the_docs_reads():
    example = load_leas(ROOT / "config" / "leas.example.yaml", known_sources=APIS)
    assert example.codes() == ["0000001", "0000002"]
    assert example.get("0000002").queue == "charters" and example.get("0000001").pool_slots == 4
