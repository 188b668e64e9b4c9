"""Strict scope: a school or sub-district the district does not have stops the run before anything is pulled,
naming the typo and listing the known values; it never becomes an empty run nor the whole district.

SIS: schools 100 (CDS 1111111, sub-district "North"), 200 (2222222, "South"), 300 (3333333, "North",
excluded from state reporting); one student with program 101 at each reportable school.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.history.store import HistoryStore
from calpads.run_scope import RunScope, ScopeError
from tests.unit.sis_fixtures import Sis

YEAR = "2025-2026"


@pytest.fixture
def sis(tmp_path) -> Sis:
    sis = Sis(sa.create_engine(f"sqlite:///{tmp_path}/sis.db"))
    sis.add_school(100, "1111111", subdistrict="North")
    sis.add_school(200, "2222222", subdistrict="South")
    sis.add_school(300, "3333333", subdistrict="North", excluded=True)
    for sid, school in ((1, 100), (2, 200)):
        sis.add_student(sid, school=school)
        sis.add_program(sid, school, "101", start="2025-09-02", program_id=500 + sid)
    return sis


def context(tmp_path: Path, run_id: str, **params) -> pipeline.RunContext:
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, "save_history": True, **params},
                                 today=date(2026, 5, 1))
    return pipeline.RunContext("SPRG", "calpads_sprg", run_id, scope, tmp_path / "work" / run_id, tmp_path / "pub")


@pytest.mark.parametrize("params, named, known", [
    ({"subdistricts": ["Nort"]}, "subdistricts: 'Nort' is not a sub-district", "'North', 'South'"),
    ({"schools": ["9999999"]}, "schools: 9999999 is not the CDS code of a reportable school", "1111111, 2222222"),
    # an excluded school is not reportable: refused like an unknown one, and not listed as known
    ({"schools": ["3333333"]}, "schools: 3333333 is not the CDS code", "Known school codes: 1111111, 2222222."),
    ({"schools": ["2222222"], "subdistricts": ["North"]}, "no school in common", "only one of the two"),
])
def test_an_unknown_school_or_subdistrict_stops_the_run_before_the_pull(tmp_path, sis, params, named, known):
    ctx = context(tmp_path, "typo", **params)
    with pytest.raises(ScopeError) as info:
        pipeline.extract(ctx, sis.engine)
    assert named in str(info.value) and known in str(info.value)
    assert not ctx.path(pipeline.RECORDS).exists()     # nothing was built


def test_a_typo_with_allow_mass_delete_deletes_nothing(tmp_path, sis):
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    first = context(tmp_path, "r1")
    for stage in (lambda: pipeline.extract(first, sis.engine), lambda: pipeline.gate(first, run_date=date(2026, 5, 1),
                                                                                    error_ceiling=0.5),
                  lambda: pipeline.diff(first, store), lambda: pipeline.publish(first),
                  lambda: pipeline.save_history(first, store)):
        stage()
    typo = context(tmp_path, "r2", subdistricts=["Nort"], allow_mass_delete=True, allow_enrolled_deletes=True)
    with pytest.raises(ScopeError, match="'Nort'"):
        pipeline.extract(typo, sis.engine)
    assert not list((tmp_path / "pub" / YEAR / "SPRG" / "r2").glob("*.txt"))
    assert [r.run_id for r in HistoryStore(store).runs("SPRG").itertuples()] == ["r1"]


def test_the_delete_scope_is_never_widened_to_the_whole_district(tmp_path):
    # A sub-district run whose pull resolved no school (state written by the extract): no school is in scope,
    # so no previously submitted record may be deleted (before, an empty list fell back to every school).
    ctx = context(tmp_path, "r", subdistricts=["North"])
    ctx.work_dir.mkdir(parents=True)
    ctx.update_state(scoped_school_codes=[])
    assert pipeline.scope_filter(ctx).schools == set()
    ctx.update_state(scoped_school_codes=["1111111"])
    assert pipeline.scope_filter(ctx).schools == {"1111111"}
