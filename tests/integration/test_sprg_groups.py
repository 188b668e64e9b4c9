"""The SPRG builder works one group of students at a time (calpads.extracts.sprg.build, to bound its memory):
its records, its rows not extracted (their order included: the report lists them in it) and its enrolled
students are those of the whole district built at once, on a dirty demo district whose not-extracted rows
fall in many groups."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from calpads.extracts import registry, sprg
from calpads.run_scope import RunScope
from calpads.staging.protocols import BuildContext
from calpads.staging.store import StagedTables


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> StagedTables:
    from calpads.demo.generator import generate_district

    root: Path = tmp_path_factory.mktemp("groups")
    sis = sa.create_engine(f"sqlite:///{root}/sis.db")
    generate_district(sis, students=800, seed=11, dirty=0.05, academic_year="2025-2026", log=lambda m: None,
                      program_rate_scale=5)
    with sis.begin() as c:   # a row of each kind that is not extracted, spread over the district
        for sql in ("UPDATE s_ca_stu_calpadsprograms_c SET programcode = '' WHERE id % 53 = 0",
                    "UPDATE s_ca_stu_calpadsprograms_c SET programmembershipcode = NULL WHERE id % 47 = 0",
                    "UPDATE s_ca_stu_calpadsprograms_c SET programstartdate = NULL WHERE id % 59 = 0",
                    "UPDATE s_ca_calpads_studentservices_c SET servicecode = '' WHERE id % 31 = 0",
                    "UPDATE s_ca_calpads_studentservices_c SET servicedate = 'not a date' WHERE id % 37 = 0",
                    "UPDATE students SET entrydate = '2025-07-01', exitdate = '2025-07-02' WHERE id % 41 = 0",
                    # program rows staged in the reverse order of their students: groups do not follow them
                    "UPDATE s_ca_stu_calpadsprograms_c SET id = 10000000 - id"):
            c.exec_driver_sql(sql)
    tables = StagedTables(root)
    tables.reset()
    registry.adapter_for(sis, "SPRG").stage(sprg.TABLES, SCOPE, tables)
    sis.dispose()
    return tables


SCOPE = RunScope.from_params("SPRG", {"academic_year": "2025-2026"}, today=date(2026, 5, 1))


def build(staged: StagedTables, per_group: int, monkeypatch: pytest.MonkeyPatch) -> registry.Built:
    monkeypatch.setattr(sprg, "STUDENTS_PER_GROUP", per_group)
    return sprg.build(StagedTables(staged.folder.parent), SCOPE, BuildContext())


def test_groups_of_students_build_what_the_whole_district_builds(staged, monkeypatch):
    whole = build(staged, 10**9, monkeypatch)
    assert len(list(staged.student_groups(sprg.TABLES, 37))) > 20
    grouped = build(staged, 37, monkeypatch)

    # A dirty district: records, and rows not extracted for several reasons, in several groups.
    assert len(whole.records) > 500 and whole.not_extracted["reason"].nunique() >= 5
    assert grouped.records.equals(whole.records)   # Arrow tables: the same schema, values and order
    pd.testing.assert_frame_equal(grouped.not_extracted.reset_index(drop=True), whole.not_extracted)
    assert grouped.enrolled_students == whole.enrolled_students and whole.enrolled_students
    assert (grouped.lea, grouped.scoped_school_codes) == (whole.lea, whole.scoped_school_codes)


def test_the_whole_district_at_once_is_build_sprg(staged, monkeypatch):
    """One group is the builder as it reads the whole staging (calpads.extracts.selection.sprg_pull)."""
    from calpads.extracts.common import program_set
    from calpads.extracts.selection import sprg_pull
    from calpads.layouts import load_layout

    tables = StagedTables(staged.folder.parent)
    direct = sprg.build_sprg(sprg_pull(tables, SCOPE, program_set(load_layout("SPRG"), SCOPE)), SCOPE)
    whole = build(staged, 37, monkeypatch)
    records = whole.records.to_pandas()
    pd.testing.assert_frame_equal(records.astype(object).where(records.notna(), None), direct.records)
    pd.testing.assert_frame_equal(whole.not_extracted.reset_index(drop=True), direct.not_extracted)
