"""The package's copy of the contract SIS schema is the contract's (when the contract folder is beside the
project), and it carries the enrollment's CALPADS codes (contract v2) on STUDENTS and REENROLLMENTS."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from calpads.sources.sis_schema import create_sis_schema, schema_ddl
from calpads.sources.sql_sis import ENROLLMENT_CODES
from tests.conftest import ROOT

CONTRACT = ROOT.parent / "shared" / "contracts" / "powerschool_sis.sql"


def test_the_copy_matches_the_contract():
    if not CONTRACT.exists():
        pytest.skip(f"no contract folder at {CONTRACT.parent}")
    assert schema_ddl() == CONTRACT.read_text()


def test_students_and_reenrollments_have_the_enrollment_codes(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/sis.db")
    create_sis_schema(engine)
    insp = sa.inspect(engine)
    for table in ("STUDENTS", "REENROLLMENTS"):
        assert set(ENROLLMENT_CODES) <= {c["name"].lower() for c in insp.get_columns(table)}, table
