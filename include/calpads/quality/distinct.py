"""Column rules validated once per distinct combination of the values they read, answered as over every row.

A column rule (a GX column map expectation: not null, in set, regex, value lengths...) decides a row by the
values of its column and of its row_condition's columns alone. A run's records repeat those values: a program
code on hundreds of thousands of records, a student's SSID, name and birth date on each of the student's
records. GX's cost grows with the rows it is given, so each group of rules that read the same columns is
validated by GX over one row per distinct combination of those columns, and GX's answer is put back on every
row that carries the combination: the failing rows and their values, and the counts GX reports (the rows the
rule applies to, the rows with no value), each combination weighed by its rows. Which combinations a
row_condition selects is GX's answer too: a companion rule over the same combinations
(``expect_column_values_to_be_null`` on the row number, which is never null) lists every combination the
condition selects. The result of each rule is GX's own formatting of a map expectation's result
(``_format_map_output``), as calpads.quality.chunks merges chunks; the gate's tests compare it with GX's answer
over every row.

Rules whose columns barely repeat (a Local Record ID) and every other kind of rule are validated over every row.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.constants import MAX_RESULT_RECORDS

# Column map expectations: one column (plus the row_condition's), decided row by row.
COLUMN_RULES = frozenset({
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null", "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set", "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex", "expect_column_value_lengths_to_be_between",
    "expect_column_values_to_be_between",
})
# A group of rules is validated over its combinations only when they are at most this share of the rows.
MAX_DISTINCT_SHARE = 0.5

Validate = Callable[[pd.DataFrame, Any], Any]   # (frame, suite) -> GX's ExpectationSuiteValidationResult


def validate_distinct(frame: pd.DataFrame, suite: Any, validate: Validate, *, row: str,
                      result_format: dict[str, Any]) -> Any:
    """GX's answer to ``suite`` over ``frame`` (``row``: its row-number column, by which GX names failing rows),
    its results in the order GX gives them for the whole suite: the column rules over the frame's distinct
    combinations (``AcrossChunks`` of one chunk), the other rules over every row."""
    from calpads.quality.chunks import answer_order

    rules = suite.expectations
    across = AcrossChunks(suite, row=row, result_format=result_format)
    across.add(frame)
    answered: dict[int, Any] = {}
    template = None
    for positions, answer in _answers(frame, rules, across, validate, suite):
        template = template or answer
        answered.update(zip((positions[k] for k in answer_order([rules[i] for i in positions])), answer.results,
                            strict=True))
    out = copy.copy(template)
    out.results = [answered[i] for i in answer_order(rules)]
    return out


def _answers(frame: pd.DataFrame, rules: list[Any], across: AcrossChunks, validate: Validate,
             suite: Any) -> Iterator[tuple[list[int], Any]]:
    """(rule positions, GX's answer to them): the rules over every row first (its answer names the frame's batch),
    then those over distinct combinations."""
    if across.over_rows or not across.positions:
        yield across.over_rows, validate(frame, subsuite(suite, [rules[i] for i in across.over_rows]))
    if across.positions:
        yield across.positions, across.answer(validate)


class _Combined:
    """GX's answer over a group's combinations: the raw answer, and per rule (in the group's order) its result
    and the combinations its row_condition selects (None: every one)."""

    def __init__(self, answer: Any, expanded: list[tuple[Any, np.ndarray | None]]) -> None:
        self.answer, self.expanded = answer, expanded


def _answer_combinations(combos: pd.DataFrame, rules: list[Any], suite: Any, validate: Validate, row: str) -> _Combined:
    """One GX validation over the combinations: the group's rules, and a companion rule per distinct
    row_condition that lists the combinations the condition selects."""
    from calpads.quality.chunks import answer_order

    conditions: dict[str, int] = {}
    companions = []
    for rule in rules:
        key = _condition_key(rule)
        if key is not None and key not in conditions:
            conditions[key] = len(rules) + len(companions)
            companions.append(_companion(rule, row))
    listed = [*rules, *companions]
    answer = validate(combos, subsuite(suite, listed))
    by_position = dict(zip(answer_order(listed), answer.results, strict=True))
    for position, result in by_position.items():
        if result.expectation_config.type != listed[position].expectation_type:
            raise RuntimeError("internal error: GX did not answer the rules in the order "
                               "calpads.quality.chunks expects")
    expanded = []
    for i, rule in enumerate(rules):
        key = _condition_key(rule)
        domain = None if key is None else _rows_named(by_position[conditions[key]], row)
        expanded.append((by_position[i], domain))
    return _Combined(answer, expanded)


_COMPANIONS: dict[tuple[int, str], tuple[Any, Any]] = {}


def _companion(rule: Any, row: str) -> Any:
    """The rule that lists every row ``rule``'s row_condition selects (the row number is never null); one per rule
    and process, so that every chunk's suite of a group is the same."""
    import great_expectations as gx

    key = (id(rule), row)
    if key not in _COMPANIONS:
        _COMPANIONS[key] = (gx.expectations.ExpectColumnValuesToBeNull(
            column=row, row_condition=rule.row_condition, condition_parser=rule.condition_parser), rule)
    return _COMPANIONS[key][0]


def _expanded(result: Any, rule: Any, combos: pd.DataFrame, domain: np.ndarray | None, weights: np.ndarray,
              inverse: np.ndarray, row_numbers: np.ndarray, row: str, result_format: dict[str, Any]) -> Any:
    """A rule's result over the combinations, as GX gives it over every row: counts weighed by rows, every row of
    a failing combination named with its value, in row order."""
    from great_expectations.expectations.expectation import _format_map_output
    from great_expectations.expectations.expectation_configuration import parse_result_format

    res = result.result or {}
    if "unexpected_count" not in res:
        return result
    in_domain = np.ones(len(combos), dtype=bool) if domain is None else np.isin(np.arange(len(combos)), domain)
    element_count = int(weights[in_domain].sum())
    nonnull_count = None
    if "missing_count" in res:
        missing = combos[rule.configuration.kwargs["column"]].isna().to_numpy()
        nonnull_count = element_count - int(weights[in_domain & missing].sum())
    failing = _rows_named(result, row)
    # GX names a failing row by its row number and the rule's column value: {column: value, row: number}.
    named = dict(zip(failing.tolist(), res.get("unexpected_index_list") or [], strict=True))
    at = np.flatnonzero(np.isin(inverse, failing))
    shown = None
    if "unexpected_list" in res:
        # GX lists the values of the first MAX_RESULT_RECORDS failing rows only. Combinations are numbered in order
        # of first appearance, so the first failing rows' combinations are the first failing combinations: listed.
        listed = list(res["unexpected_list"])
        values_of = np.empty(len(combos), dtype=object)
        values_of[failing[:len(listed)]] = listed
        shown = list(values_of[inverse[at[:MAX_RESULT_RECORDS]]])
    formatted = _format_map_output(
        parse_result_format(dict(result_format)), result.success, element_count=element_count,
        nonnull_count=nonnull_count, unexpected_count=len(at),
        unexpected_list=shown,
        unexpected_index_list=[{**named[c], row: int(n)} for c, n in zip(inverse[at].tolist(), row_numbers[at],
                                                                          strict=True)],
        unexpected_index_column_names=res.get("unexpected_index_column_names"))
    out = copy.copy(result)
    out.result = formatted["result"]
    return out


def _rows_named(result: Any, row: str) -> np.ndarray:
    return np.fromiter((d[row] for d in (result.result or {}).get("unexpected_index_list") or []), dtype="int64")


class _ColumnCodes:
    """Each column's values as integer codes (missing: -1), worked out once per column for every group (``known``:
    codes worked out already, e.g. calpads.quality.gate.coded_validation_frame's)."""

    def __init__(self, frame: pd.DataFrame, known: dict[str, np.ndarray] | None = None) -> None:
        self.frame, self.codes = frame, dict(known or {})

    def column(self, name: str) -> np.ndarray:
        if name not in self.codes:   # int32: a chunk's codes of every column
            self.codes[name] = pd.factorize(self.frame[name], use_na_sentinel=True)[0].astype("int32")
        return self.codes[name]

    def combinations(self, columns: tuple[str, ...] | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(each row's combination number, numbered in order of first appearance; each combination's first row)."""
        from calpads.extracts.arrow_ops import key_codes

        inverse = pd.factorize(key_codes([self.column(name) for name in columns]))[0].astype("int64")
        # Numbered in order of first appearance: a combination's first row is where the numbers reach a new high.
        seen = np.maximum.accumulate(inverse)
        first = np.flatnonzero(np.r_[True, inverse[1:] > seen[:-1]]) if len(inverse) else np.zeros(0, dtype="int64")
        return inverse, first


def row_combinations(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(each row's combination of ``columns``' values, numbered in order of first appearance; each combination's
    first row). Missing values (None, NaN, NaT) are one value."""
    return _ColumnCodes(frame).combinations(columns)


def _column_rule(rule: Any) -> bool:
    return (rule.expectation_type in COLUMN_RULES and isinstance(rule.configuration.kwargs.get("column"), str)
            and getattr(rule, "mostly", 1) in (None, 1, 1.0))


def _condition_key(rule: Any) -> str | None:
    kwargs = rule.configuration.kwargs
    if kwargs.get("row_condition") in (None, ""):
        return None
    cond = kwargs["row_condition"]
    cond = cond.dict() if hasattr(cond, "dict") else cond
    return json.dumps([cond, kwargs.get("condition_parser")], sort_keys=True, default=str)


_SUBSUITES: dict[tuple[int, tuple[int, ...]], Any] = {}


def subsuite(suite: Any, rules: list[Any]) -> Any:
    """Some rules as a suite of ``suite``'s name (not saved); each keeps its id (its answer names it). Made once per
    process for the same rules (every chunk asks again; copying GX's rules is slow)."""
    key = (id(suite), tuple(id(r) for r in rules))
    if key not in _SUBSUITES:
        from calpads.quality.chunks import suite_view

        _SUBSUITES[key] = (suite_view(suite, rules), suite, rules)   # holding them keeps their ids unique
    return _SUBSUITES[key][0]


class AcrossChunks:
    """The column rules of a run read a chunk at a time, validated once over the distinct combinations of every
    chunk's rows (GX's cost per rule is paid once, not once per chunk).

    ``add`` keeps, per group of rules reading the same columns, each chunk's distinct combinations and each row's
    combination; the first chunk decides which groups repeat too little to gain (``over_rows``: the caller
    validates those rules chunk by chunk). ``answer`` validates each group over the run's combinations and puts
    the answers back on every row; ``finding_rows`` gives the failing rows' values for the report."""

    def __init__(self, suite: Any, *, row: str, result_format: dict[str, Any]) -> None:
        from calpads.quality.gate import rule_columns

        self.suite, self.row, self.result_format = suite, row, result_format
        rules = suite.expectations
        groups: dict[tuple[str, ...], list[int]] = {}
        self.over_rows = [i for i, rule in enumerate(rules) if not _column_rule(rule)]
        for i, rule in enumerate(rules):
            if _column_rule(rule):
                groups.setdefault(tuple(sorted(rule_columns(rule))), []).append(i)
        self.groups = [_Group(read, _shown_columns([rules[i] for i in at]), at) for read, at in groups.items()]
        self.rows = 0
        self.first_row = 0   # the first chunk's first row number (the chunks are consecutive)

    def add(self, frame: pd.DataFrame, codes_of: dict[str, np.ndarray] | None = None) -> None:
        """A chunk's rows (``codes_of``: distinct-value codes of some of its columns, missing as -1)."""
        codes = _ColumnCodes(frame, codes_of)
        if self.rows == 0:   # the first chunk decides which groups repeat enough to gain
            self.first_row = int(frame[self.row].iloc[0]) if len(frame) else 0
            keep = []
            for group in self.groups:
                # GX names the rule that reads a column the records lack; a finding shows the columns they have.
                group.columns = tuple(c for c in group.columns if c in frame.columns)
                if not set(group.read) <= set(frame.columns) or \
                        len(codes.combinations(group.columns)[1]) > MAX_DISTINCT_SHARE * len(frame):
                    self.over_rows += group.positions
                else:
                    keep.append(group)
            self.groups = keep
            self.over_rows.sort()
        for group in self.groups:
            inverse, first = codes.combinations(group.columns)
            group.combos.append(frame.iloc[first][list(group.columns)].reset_index(drop=True))
            group.inverses.append(inverse.astype(np.min_scalar_type(max(len(first) - 1, 0))))
        self.rows += len(frame)

    @property
    def positions(self) -> list[int]:
        """The rules validated across chunks, by position in the suite, in order."""
        return sorted(i for group in self.groups for i in group.positions)

    def answer(self, validate: Validate) -> Any:
        """GX's answer to the rules of ``positions`` over every row added (by their row numbers), its results in the
        order GX gives them for those rules."""
        from calpads.quality.chunks import answer_order

        rules = self.suite.expectations
        answered: dict[int, Any] = {}
        template = None
        row_numbers = self.first_row + np.arange(self.rows, dtype="int64")
        for group in self.groups:
            combos, inverse = group.combined()
            combos[self.row] = np.arange(len(combos), dtype="int64")
            answer = _answer_combinations(combos, [rules[i] for i in group.positions], self.suite, validate, self.row)
            template = template or answer.answer
            weights = np.bincount(inverse, minlength=len(combos))
            for i, (result, domain) in zip(group.positions, answer.expanded, strict=True):
                answered[i] = _expanded(result, rules[i], combos, domain, weights, inverse, row_numbers, self.row,
                                        self.result_format)
            group.failing = np.unique(np.concatenate(
                [_rows_named(answered[i], self.row) for i in group.positions] or [np.zeros(0, dtype="int64")]))
        out = copy.copy(template)
        out.meta = {}
        mine = self.positions
        out.results = [answered[mine[k]] for k in answer_order([rules[i] for i in mine])]
        return out

    def finding_rows(self, report: pd.DataFrame) -> pd.DataFrame:
        """The failing rows (after ``answer``) with their values: ``report`` (every row's report columns, by row
        number) and each group's columns, one row per failing row number, in order."""
        failing = np.unique(np.concatenate([g.failing for g in self.groups] or [np.zeros(0, dtype="int64")]))
        out = report.iloc[failing].reset_index(drop=True)
        for group in self.groups:
            combos, inverse = group.combos_all, group.inverse_all
            values = combos.iloc[inverse[failing]].reset_index(drop=True)
            for c in group.columns:
                if c not in out:
                    out[c] = values[c]
        return out


class _Group:
    """Rules that read the same columns: their combinations chunk by chunk, then over the run."""

    def __init__(self, read: tuple[str, ...], shown: list[str], positions: list[int]) -> None:
        # A combination also carries the columns the rules' findings show (a rule on a derived column shows the
        # fields it is derived from).
        self.read, self.positions = read, positions
        self.columns = tuple(dict.fromkeys([*read, *shown]))
        self.combos: list[pd.DataFrame] = []
        self.inverses: list[np.ndarray] = []
        self.failing = np.zeros(0, dtype="int64")

    def combined(self) -> tuple[pd.DataFrame, np.ndarray]:
        """(the run's distinct combinations, each row's combination number): the chunks' combinations put together
        and numbered again over the run."""
        chunks = pd.concat(self.combos, ignore_index=True) if len(self.combos) > 1 else self.combos[0]
        renumbered, first = row_combinations(chunks, list(self.columns))
        offsets = np.cumsum([0] + [len(c) for c in self.combos[:-1]])
        inverse = np.concatenate([renumbered[offset + chunk_inverse.astype("int64")]
                                  for offset, chunk_inverse in zip(offsets, self.inverses, strict=True)])
        self.combos, self.inverses = [], []
        self.combos_all = chunks.iloc[first].reset_index(drop=True)
        self.inverse_all = inverse
        return self.combos_all.copy(), inverse


def _shown_columns(rules: list[Any]) -> list[str]:
    return [c for rule in rules for c in (rule.meta or {}).get("columns") or []]
