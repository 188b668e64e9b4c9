"""The SPRG build's column steps on Arrow arrays and row positions (calpads.extracts.arrow_ops), the Arrow paths
of the selection's tests, the rank sort and the per-distinct-value date parse: each against the pandas (or
plain Python) computation it replaces, on random data with the awkward cases (repeated and missing keys, text
with spaces and non-ASCII letters, strings that are not dates)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from calpads.dates import ISO, iso_dates
from calpads.extracts import arrow_ops as ops
from calpads.extracts import selection
from calpads.extracts.common import blank_to_none, ccyymmdd, in_sort_order, sort_order, to_datetime
from calpads.staging.store import all_distinct

TEXTS = ["a", "A", " a ", "", None, "\u00a0x\u2003", "\x1cy\x1f", "ß", "Émile", "李", "ab", "B ", "10", "9", "z"]
DATES = ["2025-09-02", "2026-01-15", "", None, " 2025-09-02", "2025-02-30", "0001-01-01", "9999-12-31", "abc",
         "2025-9-2", "2025-09-02T00:00:00", "20250902", "é025-09-02", "2024-02-29"]


def _keys(rng: random.Random, n: int, floats: bool) -> np.ndarray:
    values = np.array([rng.randint(0, 4) for _ in range(n)], dtype=float if floats else np.int64)
    if floats:
        values[[i for i in range(n) if rng.random() < 0.2]] = np.nan
    return values


@pytest.mark.parametrize("floats", [False, True])
def test_inner_join_gives_pandas_merge_rows_in_its_order(floats):
    rng = random.Random(7)
    for _ in range(200):
        nl, nr, width = rng.randint(0, 25), rng.randint(0, 25), rng.randint(1, 3)
        left = [_keys(rng, nl, floats) for _ in range(width)]
        right = [_keys(rng, nr, floats) for _ in range(width)]
        names = [f"k{i}" for i in range(width)]
        lf = pd.DataFrame(dict(zip(names, left, strict=True))).assign(li=np.arange(nl))
        rf = pd.DataFrame(dict(zip(names, right, strict=True))).assign(ri=np.arange(nr))
        merged = lf.merge(rf, on=names, how="inner")
        li, ri = ops.inner_join(left, right)
        assert li.tolist() == merged["li"].tolist() and ri.tolist() == merged["ri"].tolist()

        unique = rf.drop_duplicates(names)
        positions = ops.left_positions(left, [unique[n].to_numpy() for n in names])
        expected = lf.merge(unique.assign(at=np.arange(len(unique))), on=names, how="left")["at"]
        assert positions.tolist() == expected.fillna(-1).astype(int).tolist()

        assert ops.first_of_each(left).tolist() == (~lf[names].duplicated()).tolist()


def test_text_helpers_give_what_the_pandas_helpers_give():
    rng = random.Random(3)
    for _ in range(100):
        texts = pd.Series([rng.choice(TEXTS) for _ in range(rng.randint(0, 30))], dtype="str")
        dates = pd.Series([rng.choice(DATES) for _ in range(rng.randint(0, 30))], dtype="str")
        arrow = ops.arrow_text(texts)
        assert ops.blank_to_null(arrow).to_pylist() == blank_to_none(texts).tolist()
        assert ops.per_value(ops.arrow_text(dates), ccyymmdd).to_pylist() == ccyymmdd(dates).tolist()
        parsed = ops.per_value_dates(ops.arrow_text(dates), to_datetime)
        assert pd.Series(parsed).equals(to_datetime(dates).astype("datetime64[us]"))
        pd.testing.assert_series_equal(iso_dates(dates), pd.to_datetime(dates, format=ISO, errors="coerce"))
        # The object column of the same values takes pandas' own path: the same answer.
        assert ops.arrow_text(texts.astype(object)).to_pylist() == arrow.to_pylist()


def test_id_text_is_astype_str():
    ints = pd.Series([1, 17, -3], dtype="int64")
    floats = pd.Series([1.0, np.nan, 17.0])
    assert ops.id_text(ints).to_pylist() == ints.astype(str).tolist() == ["1", "17", "-3"]
    assert ops.id_text(floats).to_pylist() == ["1.0", None, "17.0"]


def test_selection_tests_in_arrow_answer_as_on_python_text():
    rng = random.Random(5)
    for _ in range(100):
        values = [rng.choice(DATES + TEXTS) for _ in range(rng.randint(0, 30))]
        arrow, python = pd.Series(values, dtype="str"), pd.Series(values, dtype=object)
        assert selection._arrow(arrow) is not None and selection._arrow(python) is None
        for test in (selection.not_a_date, selection.is_blank):
            assert test(arrow).tolist() == test(python).tolist()
        for test in (selection.on_or_before, selection.on_or_after, selection.after):
            for bound in ("2025-09-02", "a", "ß"):
                assert test(arrow, bound).tolist() == test(python, bound).tolist()
        parts = [arrow, pd.Series(values[::-1], dtype="str")]
        assert selection._distinct_sorted(parts) == sorted({v for v in values if v is not None})


def test_rank_sort_is_arrows_stable_sort_of_the_upper_cased_keys():
    rng = random.Random(11)
    for _ in range(200):
        n = rng.randint(0, 60)
        columns = {f"c{j}": pa.array([rng.choice(TEXTS) for _ in range(n)], pa.string())
                   for j in range(rng.randint(1, 5))}
        keys = list(columns)
        upper = pa.table({k: pc.utf8_upper(pc.fill_null(columns[k], "")) for k in keys}) if all(
            pc.all(pc.string_is_ascii(pc.fill_null(columns[k], ""))).as_py() for k in keys) else None
        if upper is None:   # Python's upper-casing, in Python's order
            rows = sorted(range(n), key=lambda i: tuple((columns[k][i].as_py() or "").upper() for k in keys))
        else:
            rows = pc.sort_indices(upper, sort_keys=[(k, "ascending") for k in keys]).to_pylist()
        assert sort_order(columns, keys).tolist() == rows


def test_in_sort_order_is_true_exactly_when_python_sorting_keeps_the_rows():
    rng = random.Random(13)
    seen = set()
    for _ in range(400):
        n = rng.randint(0, 8)
        width = rng.randint(1, 3)
        rows = [[rng.choice(TEXTS[:6] + ["ß", "SS", "ss", "b"]) for _ in range(width)] for _ in range(n)]
        if rng.random() < 0.5:   # half of the cases sorted as Python would: the answer must then be True
            rows.sort(key=lambda r: tuple((v or "").upper() for v in r))
        columns = {f"c{j}": pa.array([r[j] for r in rows], pa.string()) for j in range(width)}
        python_keeps = [tuple((v or "").upper() for v in r) for r in rows] == sorted(
            tuple((v or "").upper() for v in r) for r in rows)
        assert in_sort_order(columns, list(columns)) is python_keeps
        seen.add(python_keeps)
    assert seen == {True, False}


def test_all_distinct_counts_only_when_the_ids_are_not_increasing():
    assert all_distinct(pa.chunked_array([[1, 2], [5]])) and all_distinct(pa.chunked_array([[5, 2], [1]]))
    assert not all_distinct(pa.chunked_array([[5, 2], [5]])) and not all_distinct(pa.chunked_array([[1, None]]))
    assert all_distinct(pa.chunked_array([], pa.int64())) and not all_distinct(pa.chunked_array([["a", "a"]]))
