"""Random bad SIS rows never crash a run: each bad record is held back with the rule it breaks, and
nothing a SIS holds can break a published record's field count.

Hypothesis draws a tiny SQLite SIS (SQLite's columns accept any type): nulls wherever the schema
allows them, overlong strings, non-ASCII, carets, quotes, line breaks and control characters in
names, dates out of range or of the wrong type, duplicate keys. The run goes extract -> gate -> diff
-> publish in-process; the only failures allowed are our own (StagingCheckFailed, SisDataError),
whose texts carry no student data.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from calpads import pipeline
from calpads.quality.staging import StagingCheckFailed
from calpads.sources.sis_schema import create_sis_schema
from calpads.sources.sql_sis import SisDataError
from tests.integration.reliability import LEA, SCHOOL, assert_no_stray_files, context

NAME_RULES = {"legal_first_name": "SPRG.3.09.format", "legal_last_name": "SPRG.3.10.format"}
BREAKING = re.compile(r'[\^"\x00-\x1f\x7f-\x9f\u2028\u2029]')
FIELDS = 25

nasty = st.sampled_from(["^", "\n", "\r", "\r\n", '"', "\t", "\x00", "\x0b", "\u2028", "\x85", "é", "Ñ", "李",
                         "'", "-", " ", "\\", ",", "|"])
letters = st.sampled_from(list("AbcdeZ"))
name = st.lists(st.one_of(letters, nasty), min_size=0, max_size=8).map("".join) | st.just("X" * 80)
maybe_name = st.none() | name
date_like = st.one_of(
    st.none(), st.just(""), st.sampled_from(["2015-03-04", "2025-09-02", "2026-01-15", "1850-01-01", "2099-12-31",
                                             "0001-01-01", "9999-12-31", "2015-02-30", "2015-13-01", "abc",
                                             "2015/03/04", "20150304", "2025-09-02T00:00:00"]),
    st.integers(-10, 30_000_000), st.floats(allow_nan=True, allow_infinity=False))
code = st.one_of(st.none(), st.just(""), st.sampled_from(["101", "108", "113", "122", "190", "999", "1O1", "10"]),
                 st.text(max_size=5))
short = st.one_of(st.none(), st.just(""), st.text(max_size=4), st.just("Y"), st.just("N"), st.just("06123456789"))
ssid = st.one_of(st.none(), st.just(""), st.sampled_from(["1000000001", "123", "12345678901234567890", "12345abcde"]),
                 st.text(min_size=1, max_size=12))

student = st.fixed_dictionaries({
    "number": st.one_of(st.just(""), st.text(min_size=1, max_size=20), st.just("9" * 40)),
    "ssid": ssid, "first": name, "last": name, "dob": date_like,
    "gender": st.one_of(st.none(), st.sampled_from(["M", "F", "X", "Q", "MM", ""])),
    "legal_first": maybe_name, "legal_last": maybe_name,
    "legal_gender": st.one_of(st.none(), st.sampled_from(["M", "F", "X", ""])),
    "programs": st.lists(st.fixed_dictionaries({
        "code": code, "membership": st.one_of(st.none(), st.sampled_from(["1", "3", "x", ""])),
        "start": date_like, "end": date_like, "cpa": short, "migrant": short, "disability": short,
        "dsea": short, "dwelling": short, "uy": short, "ry": short, "duplicate": st.booleans(),
    }), min_size=1, max_size=2),
})


def build_sis(path: Path, students: list[dict]) -> sa.Engine:
    eng = sa.create_engine(f"sqlite:///{path}")
    create_sis_schema(eng)
    with eng.begin() as c:
        c.exec_driver_sql("INSERT INTO PREFS VALUES (1, 'districtnumber', ?, 0)", (LEA,))
        c.exec_driver_sql("INSERT INTO SCHOOLS VALUES (1, 100, 'Elm', ?, 'North', 0)", (SCHOOL,))
        c.exec_driver_sql("INSERT INTO TERMS VALUES (1, 100, 35, '2025-08-13', '2026-06-05', 1)")
        pid = 100
        for i, s in enumerate(students, start=1):
            c.exec_driver_sql("INSERT INTO STUDENTS VALUES (?, ?, ?, ?, ?, ?, ?, ?, 100, 4, '2025-08-13', NULL, 0, 0, "
                              "NULL, NULL, NULL, NULL, NULL)",
                              (i, 1000 + i, s["number"], s["ssid"], s["first"], s["last"], s["dob"], s["gender"]))
            c.exec_driver_sql("INSERT INTO S_CA_STU_X VALUES (?, ?, ?, ?)",
                              (1000 + i, s["legal_first"], s["legal_last"], s["legal_gender"]))
            for p in s["programs"]:
                row = (1000 + i, p["code"], p["membership"], p["start"], p["end"], p["cpa"], p["migrant"],
                       p["disability"], p["dsea"], p["dwelling"], p["uy"], p["ry"])
                for _ in range(2 if p["duplicate"] else 1):   # a duplicate: same key, another row ID
                    pid += 1
                    c.exec_driver_sql(
                        "INSERT INTO S_CA_STU_CALPADSPROGRAMS_C (ID, STUDENTSDCID, SCHOOLID, PROGRAMCODE, "
                        "PROGRAMMEMBERSHIPCODE, PROGRAMSTARTDATE, PROGRAMENDDATE, PARTNERSHIPACADEMYID, "
                        "MIGRANTSTUDENTID, PRMARYDISABILITYCODE, DISTSPEDACCOUNTABILITY, DWELLINGTYPE, "
                        "UNACCOMPANIEDYOUTH, RUNAWAYYOUTH) VALUES (?, ?, 100, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (pid, *row))
    return eng


def _pii(students: list[dict]) -> list[str]:
    """Values that must never appear in an exception text: names of 4+ characters, SSIDs."""
    values = [s[k] for s in students for k in ("first", "last", "legal_first", "legal_last", "ssid")]
    return [v for v in values if isinstance(v, str) and len(v.strip()) >= 4]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    eng = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/store.db")
    yield eng
    eng.dispose()


CLEAN_PROGRAM = {"code": "101", "membership": "3", "start": "2025-09-02", "end": None, "cpa": None, "migrant": None,
                 "disability": None, "dsea": None, "dwelling": None, "uy": None, "ry": None, "duplicate": False}
# Everything valid but the names: the record reaches the writer unless a name rule holds it back.
named_student = st.fixed_dictionaries({
    "number": st.just("5001"), "ssid": st.just("2000000001"), "first": name, "last": name, "dob": st.just("2015-03-04"),
    "gender": st.just("F"), "legal_first": maybe_name, "legal_last": maybe_name, "legal_gender": st.none(),
    "programs": st.just([CLEAN_PROGRAM]),
})
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


@FUZZ
@given(students=st.lists(student, min_size=1, max_size=3))
def test_bad_sis_rows_are_held_back_with_their_rule_and_never_break_a_file(students, store):
    run_and_check(students, store)


@FUZZ
@example(student={"number": "5001", "ssid": "2000000001", "first": "Ann", "last": 'O"Brien', "dob": "2015-03-04",
                  "gender": "F", "legal_first": None, "legal_last": None, "legal_gender": None,
                  "programs": [CLEAN_PROGRAM]})
@given(student=named_student)
def test_any_name_is_published_whole_or_held_back_by_its_name_rule(student, store):
    run_and_check([student], store)


def run_and_check(students: list[dict], store: sa.Engine) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        sis = build_sis(tmp_path / "sis.db", students)
        (tmp_path / "pub").mkdir()   # the publish root exists before a run
        ctx = context(tmp_path, "manual__fuzz", tmp_path / "pub")
        try:
            pipeline.extract(ctx, sis)
        except (StagingCheckFailed, SisDataError) as exc:   # our own texts: no student data in them
            assert not [v for v in _pii(students) if v in str(exc)], str(exc)
            return
        finally:
            sis.dispose()
        pipeline.gate(ctx, run_date=ctx.scope.today, error_ceiling=1.0)
        pipeline.diff(ctx, store)
        published = pipeline.publish(ctx)

        records = pd.read_parquet(ctx.path(pipeline.RECORDS))
        held = pd.read_parquet(ctx.path(pipeline.HELD_BACK))
        findings = pd.read_csv(Path(str(ctx.run_folder)) / "report" / "findings.csv", dtype=str,
                               keep_default_na=False) if len(held) else pd.DataFrame(columns=["local_record_id"])
        # A record with a structural character in a name is held back by that name's format rule.
        for column, rule in NAME_RULES.items():
            bad = records[records[column].fillna("").str.contains(BREAKING)]
            for rid in bad["local_record_id"]:
                assert rid in set(held["local_record_id"]), (column, rid)
                assert rule in set(findings.loc[findings["local_record_id"] == rid, "rule_id"]), (column, rid)
        # Every held-back record is reported with at least one rule id.
        assert set(held["local_record_id"]) <= set(findings["local_record_id"])
        # Published files: every line has the layout's field count and no breaking character.
        folder = Path(published["folder"])
        manifest = json.loads((folder / "manifest.json").read_text())
        for f in manifest["files"]:
            data = (folder / f["name"]).read_bytes().decode("utf-8")
            lines = data.split("\n")[:-1] if data else []
            assert len(lines) == f["records"], f["name"]
            for line in lines:
                fields = line.split("^")     # the caret is the delimiter: no field may hold a breaking character
                assert len(fields) == FIELDS and not any(BREAKING.search(f) for f in fields), repr(line)
            assert len(data.splitlines()) == f["records"]     # also for readers splitting on any line break
        assert_no_stray_files(tmp_path / "pub")
