"""One GX suite over a run's records in chunks of rows, answered as the one validation of the whole batch.

The gate's memory then grows with a chunk, not with the district. Every rule stays in its GX suite and is
decided by GX:

- a rule that decides each row by that row's own values (``ROW_WISE``: GX's column, column-pair and
  conditioned map expectations) is validated chunk by chunk, the chunks being consecutive rows;
- any other rule (a key that must be unique across the file, a table-level count) is validated once, over
  every row of the columns it reads.

``merge`` puts the per-chunk answers of a rule back together with GX's own formatting of a map expectation's
result (``_format_map_output``), fed the chunks' counts and their unexpected values and rows in row order: the
counts, percentages, partial lists and value counts are those GX gives for the whole batch. The gate's tests
compare the chunked answer with the answer for the whole batch in one piece.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

# Map expectations whose answer for a row depends on that row only (GX ColumnMapExpectation and
# ColumnPairMapExpectation without a cross-row metric). Any other type is validated over every row at once.
ROW_WISE = frozenset({
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null", "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set", "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex", "expect_column_value_lengths_to_be_between",
    "expect_column_values_to_be_between", "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_column_pair_values_to_be_equal",
})


@dataclass
class Part:
    """Some of a suite's rules as a suite of the same name (not saved), and each rule's position in the suite."""

    suite: Any
    positions: list[int]


def split_suite(suite: Any) -> tuple[Part | None, Part | None]:
    """(the suite's row-wise rules, its other rules), or None when there are none."""

    row_wise = [i for i, e in enumerate(suite.expectations)
                if e.expectation_type in ROW_WISE and not _uses_mostly(e)]
    whole = [i for i in range(len(suite.expectations)) if i not in set(row_wise)]

    def part(positions: list[int]) -> Part | None:
        if not positions:
            return None
        return Part(suite_view(suite, [suite.expectations[i] for i in positions]), positions)

    return part(row_wise), part(whole)


def suite_view(suite: Any, rules: list[Any]) -> Any:
    """Some of ``suite``'s rules as a suite of its name (not saved); each rule keeps its id (its answer names it).

    The rules are copied field by field: GX's own copy of a rule (``copy.copy``) is deep and also copies the whole
    suite the rule belongs to (through its save callback), which cost seconds for the gate's few dozen views."""
    import great_expectations as gx

    view = gx.ExpectationSuite(name=suite.name, expectations=[_detached(r) for r in rules],
                               meta=copy.deepcopy(suite.meta))
    for copied, rule in zip(view.expectations, rules, strict=True):
        copied.id = rule.id
    return view


def _detached(rule: Any) -> Any:
    """A copy of a rule that belongs to no suite: its fields deep-copied, without its save callback's suite."""
    fields = {name: copy.deepcopy(value) for name, value in rule.__dict__.items() if name != "id"}
    return rule.copy(update={**fields, "id": None}, deep=False)


def answer_order(expectations: list[Any]) -> list[int]:
    """The order GX 1.x answers a suite's rules in (Validator.process_expectations_for_validation): grouped by
    their ``column`` in the order the columns first appear, rules without one (pairs, compound keys) together
    where the first of them stands; as listed within a group."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(expectations):
        column = e.configuration.kwargs.get("column")
        groups.setdefault(column if isinstance(column, str) else "\x00no column", []).append(i)
    return [i for group in groups.values() for i in group]


def positions(answer: Any, part: Part) -> list[int]:
    """For each result of ``answer`` (GX's answer to ``part.suite``), the rule's position in the whole suite."""
    at = [part.positions[i] for i in answer_order(part.suite.expectations)]
    if [r.expectation_config.type for r in answer.results] != \
            [part.suite.expectations[i].expectation_type for i in answer_order(part.suite.expectations)]:
        raise RuntimeError("internal error: GX did not answer the rules in the order calpads.quality.chunks expects")
    return at


def answer_rank(suite: Any) -> dict[int, int]:
    """Suite position -> the place GX gives that rule's result when it validates the whole suite at once."""
    return {at: rank for rank, at in enumerate(answer_order(suite.expectations))}


def _uses_mostly(expectation: Any) -> bool:
    """A rule with ``mostly`` passes on a share of the whole batch: never decided chunk by chunk."""
    return getattr(expectation, "mostly", 1) not in (None, 1, 1.0)


def merge(chunks: list[Any], row_wise: Part | None, whole: list[tuple[Any, Part]], suite: Any,
          result_format: dict[str, Any]) -> Any:
    """One ExpectationSuiteValidationResult from the row-wise answers of consecutive chunks (in row order) and
    the answers over every row at once (``whole``: each answer with the part of the suite it answers), its results
    in the order GX answers ``suite`` in."""
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    placed: list[tuple[int, Any]] = []
    if chunks and row_wise is not None:
        for at, parts in zip(positions(chunks[0], row_wise), zip(*(a.results for a in chunks), strict=True),
                             strict=True):
            placed.append((at, _merge_one(list(parts), result_format)))
    for answer, part in whole:
        placed += list(zip(positions(answer, part), answer.results, strict=True))
    rank = answer_rank(suite)
    results = [r for _, r in sorted(placed, key=lambda p: rank[p[0]])]
    first = chunks[0] if chunks else whole[0][0]
    out = copy.copy(first)
    stats = calc_validation_statistics(results)
    out.results = results
    out.success = stats.success
    out.statistics = {"evaluated_expectations": stats.evaluated_expectations,
                      "successful_expectations": stats.successful_expectations,
                      "unsuccessful_expectations": stats.unsuccessful_expectations,
                      "success_percent": stats.success_percent}
    return out


def _merge_one(parts: list[Any], result_format: dict[str, Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    from great_expectations.constants import MAX_RESULT_RECORDS
    from great_expectations.expectations.expectation import _format_map_output
    from great_expectations.expectations.expectation_configuration import parse_result_format

    res = [p.result or {} for p in parts]
    element = sum(int(r.get("element_count") or 0) for r in res)
    nonnull = None if any("missing_count" not in r for r in res) else \
        sum(int(r.get("element_count") or 0) - int(r["missing_count"] or 0) for r in res)
    # GX lists the values of the first MAX_RESULT_RECORDS failing rows of a batch only.
    values = None if any("unexpected_list" not in r for r in res) else \
        [v for r in res for v in r["unexpected_list"]][:MAX_RESULT_RECORDS]
    rows = None if any("unexpected_index_list" not in r for r in res) else \
        [v for r in res for v in r["unexpected_index_list"]]
    success = all(p.success for p in parts)
    formatted = _format_map_output(parse_result_format(dict(result_format)), success, element_count=element,
                                   nonnull_count=nonnull, unexpected_count=sum(int(r["unexpected_count"]) for r in res),
                                   unexpected_list=values, unexpected_index_list=rows,
                                   unexpected_index_column_names=res[0].get("unexpected_index_column_names"))
    out = copy.copy(parts[0])
    out.success = success
    out.result = formatted["result"]
    return out
