"""Time the SPRG quality gate (GX) against a plain pandas pass of the same rules.

    python bench/gate_vs_pandas.py [ROWS] [--repeat N] [--object] [--unique]
                                                 # default 200000 rows, best of 1 timing; --object also times
                                                 # the gate without categorical columns (the pre-optimisation
                                                 # run, for before/after figures on the same machine load)

Rows are copies of the gate tests' hand-made records (tests/unit/test_gate_rules.py):
about 1% break one rule each, the rest pass. The pandas pass interprets the same
suite JSON with vectorised pandas (no GX), so both check exactly the same rules; it is
a yardstick only, the gate never uses it. Prints seconds and the finding counts (which
must agree).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calpads.layouts import load_layout  # noqa: E402
from calpads.quality.gate import derived_columns, run_gate, validation_frame  # noqa: E402
from calpads.quality.suite_builder import suite_path  # noqa: E402
from tests.unit.test_gate_rules import CASES, RUN_DATE, base_record, frame  # noqa: E402


def generate(rows: int, bad_share: float = 0.01, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    good = [base_record(i, **g) for i, (_, g) in enumerate(CASES.values())]
    bad = [base_record(i, **b) for i, (b, _) in enumerate(CASES.values())]
    pool_good, pool_bad = frame(good), frame(bad)
    n_bad = int(rows * bad_share)
    df = pd.concat([pool_good.iloc[rng.integers(0, len(pool_good), rows - n_bad)],
                    pool_bad.iloc[rng.integers(0, len(pool_bad), n_bad)]], ignore_index=True)
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    df["local_record_id"] = [f"{i}.{i}" for i in range(len(df))]
    return df


def make_unique(df: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    """Real districts: every student has its own SSID, local id and names. Valid values are replaced by
    other valid values (a planted bad value stays bad), so the findings do not change."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    n = len(out)
    ok = out["ssid"].astype("string").str.fullmatch(r"[0-9]{10}").fillna(False).to_numpy(dtype=bool)
    out.loc[ok, "ssid"] = [f"{v:010d}" for v in rng.choice(10**10, n, replace=False)[ok]]
    ok = out["local_student_id"].astype("string").str.fullmatch(r"S[0-9]+").fillna(False).to_numpy(dtype=bool)
    out.loc[ok, "local_student_id"] = [f"S{i}" for i in np.flatnonzero(ok)]
    for col in ("legal_first_name", "legal_last_name"):
        ok = out[col].astype("string").str.fullmatch(r"[A-Za-z]{1,20}").fillna(False).to_numpy(dtype=bool)
        letters = rng.integers(0, 26, (n, 8))
        out.loc[ok, col] = ["".join(chr(65 + c) for c in row) for row in letters[ok]]
    return out


def _condition_mask(df: pd.DataFrame, cond: dict | None) -> pd.Series:
    if not cond:
        return pd.Series(True, index=df.index)
    kind = cond["type"]
    if kind in ("and", "or"):
        masks = [_condition_mask(df, c) for c in cond["conditions"]]
        out = masks[0]
        for m in masks[1:]:
            out = (out & m) if kind == "and" else (out | m)
        return out
    col = df[cond["column"]["name"]]
    if kind == "nullity":
        return col.isna() if cond["is_null"] else col.notna()
    op, p = cond["operator"], cond["parameter"]
    if op in ("IN", "NOT_IN"):
        return col.isin(p) if op == "IN" else ~col.isin(p)
    return col.eq(p) if op == "==" else col.ne(p)


def pandas_pass(records: pd.DataFrame, run_date=RUN_DATE, record_type: str = "SPRG") -> dict[str, int]:
    """Failing-row counts per rule id, computed with pandas from the suite JSON."""
    layout = load_layout(record_type)
    df = records.copy()
    for name, values in derived_columns(df, run_date).items():
        df[name] = values
    suite = json.loads(suite_path(record_type).read_text())
    counts: dict[str, int] = {}
    for e in suite["expectations"]:
        kw, t = e["kwargs"], e["type"]
        rows = _condition_mask(df, kw.get("row_condition"))
        if "column" in kw:
            col = df[kw["column"]]
            present = col.notna()
            if t == "expect_column_values_to_not_be_null":
                bad = ~present
            elif t == "expect_column_values_to_be_null":
                bad = present
            elif t == "expect_column_values_to_be_in_set":
                bad = present & ~col.isin(kw["value_set"])
            elif t == "expect_column_values_to_not_be_in_set":
                bad = present & col.isin(kw["value_set"])
            elif t == "expect_column_values_to_match_regex":
                bad = present & ~col.astype("string").str.contains(kw["regex"], regex=True).fillna(False)
            elif t == "expect_column_value_lengths_to_be_between":
                bad = present & (col.astype("string").str.len() > kw["max_value"]).fillna(False)
            else:
                raise NotImplementedError(t)
        elif t == "expect_compound_columns_to_be_unique":
            bad = df[kw["column_list"]].duplicated(keep=False)
        else:
            a, b = df[kw["column_A"]], df[kw["column_B"]]
            both = a.notna() & b.notna()
            if t == "expect_column_pair_values_a_to_be_greater_than_b":
                bad = both & ~((a >= b) if kw.get("or_equal") else (a > b))
            elif t == "expect_column_pair_values_to_be_equal":
                bad = both & (a != b)
            else:
                raise NotImplementedError(t)
        counts[e["meta"]["rule_id"]] = int((rows & bad).sum())
    del layout
    return {k: v for k, v in counts.items() if v}


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    import argparse

    from calpads.quality import gate

    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="?", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--object", action="store_true", help="also time the gate with object columns only")
    parser.add_argument("--unique", action="store_true", help="unique SSIDs, local ids and names per row")
    args = parser.parse_args()
    rows = args.rows
    records = make_unique(generate(rows)) if args.unique else generate(rows)
    layout = load_layout("SPRG")
    run_gate(records.head(10), "SPRG", RUN_DATE)                     # warm the GX context and suite
    t_prep, _ = _best(lambda: validation_frame(records, layout, RUN_DATE), args.repeat)
    t_gate, result = _best(lambda: run_gate(records, "SPRG", RUN_DATE), args.repeat)
    t_pandas, pandas_counts = _best(lambda: pandas_pass(validation_frame(records, layout, RUN_DATE)), args.repeat)
    gx_counts = {k: v["count"] for k, v in result.summary["rules"].items()}
    print(f"rows={rows} findings={len(result.findings)} held_back={len(result.held_back)}")
    print(f"gate (GX, incl. frame prep {t_prep:.2f}s): {t_gate:.2f}s   pandas pass: {t_pandas:.2f}s   "
          f"ratio {t_gate / t_pandas:.1f}x")
    if args.object:
        compact = gate.compact_frame
        gate.compact_frame = lambda frame, suite: frame
        try:
            t_obj, obj_result = _best(lambda: run_gate(records, "SPRG", RUN_DATE), args.repeat)
        finally:
            gate.compact_frame = compact
        print(f"gate without categoricals (before): {t_obj:.2f}s   ratio {t_obj / t_pandas:.1f}x   "
              f"same findings: {obj_result.findings.equals(result.findings)}")
    print("same findings per rule:", gx_counts == pandas_counts)
    if gx_counts != pandas_counts:
        for k in sorted(set(gx_counts) | set(pandas_counts)):
            if gx_counts.get(k) != pandas_counts.get(k):
                print(f"  {k}: gx={gx_counts.get(k)} pandas={pandas_counts.get(k)}")


if __name__ == "__main__":
    main()
