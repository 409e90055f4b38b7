"""``dim_ref`` against Karet's dimension cases and a slow, row-by-row Python reference of its matcher."""

from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from polars.testing import assert_series_equal
from pydantic import TypeAdapter

from karet_defs.config.models import AstNode, Dimension, OnMissLiteral
from karet_defs.errors import ExpressionError
from karet_defs.expr.compile import compile_expr
from karet_defs.expr.dimensions import DimensionTable
from tests.factories import col

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
ALPHABET = "abAB -é"
NODE: TypeAdapter[AstNode] = TypeAdapter(AstNode)


def dimension(
    rows: list[tuple[list[str], list[str], int]],
    *,
    match: str = "keyword_substring",
    case_insensitive: bool = False,
    on_miss: Any = "null",
    values: tuple[str, ...] = ("category",),
) -> Dimension:
    return Dimension.model_validate(
        {
            "id": "d",
            "match": match,
            "case_insensitive": case_insensitive,
            "on_miss": on_miss,
            "rows": {
                "values": list(values),
                "rows": [{"patterns": p, "values": v, "priority": pr} for p, v, pr in rows],
            },
        }
    )


def evaluate(dim: Dimension, inputs: list[str | None], value: str | None = None) -> list[str | None]:
    node = {"kind": "dim_ref", "dim_id": "d", "input": col("x"), **({"value": value} if value else {})}
    expr = compile_expr(NODE.validate_python(node), {}, {"d": DimensionTable.inline(dim)})
    frame = pl.LazyFrame({"x": inputs}, schema={"x": pl.String})
    return frame.select(expr.alias("y")).collect(engine="streaming").get_column("y").to_list()


def reference(dim: Dimension, text: str | None, value_index: int) -> str | None:
    """Karet's ``DimensionMatcher::lookup``, one input at a time."""
    if text is None:
        return None
    fold = (lambda s: s.lower()) if dim.case_insensitive else (lambda s: s)
    folded = fold(text)
    rows = dim.rows.rows  # type: ignore[union-attr]
    hit = None
    if dim.match == "exact":
        hit = next((r for r in rows if any(fold(p) == folded for p in r.patterns)), None)
    else:
        for row in rows:
            if any(fold(p) in folded for p in row.patterns) and (hit is None or row.priority > hit.priority):
                hit = row
    if hit is not None:
        return hit.values[value_index]
    if dim.on_miss == "passthrough":
        return text
    if isinstance(dim.on_miss, OnMissLiteral):
        return dim.on_miss.literal
    return None


@pytest.mark.parametrize(
    ("name", "dim", "inputs", "expected"),
    [
        (
            "substring_case_insensitive_priority_ordered",
            dimension(
                [(["safeway"], ["Groceries"], 0), (["safeway gas"], ["Fuel"], 10)], case_insensitive=True
            ),
            ["SAFEWAY GAS #123", "SAFEWAY #99", "UNRELATED", None],
            ["Fuel", "Groceries", None, None],
        ),
        (
            "exact_passthrough",
            dimension([(["CA"], ["Canada"], 0)], match="exact", case_insensitive=True, on_miss="passthrough"),
            ["ca", "XK", None],
            ["Canada", "XK", None],
        ),
        (
            "exact_literal",
            dimension([(["CA"], ["Canada"], 0)], match="exact", on_miss={"literal": "Uncategorized"}),
            ["ZZ", "CA", "CANADA", None],
            ["Uncategorized", "Canada", "Uncategorized", None],
        ),
        (
            "first_in_definition_order_at_equal_priority",
            dimension([(["ab"], ["first"], 0), (["abc"], ["second"], 0)]),
            ["abcdef"],
            ["first"],
        ),
        (
            "case_sensitive_does_not_fold",
            dimension([(["UBER"], ["T"], 0)]),
            ["uber eats", "UBER EATS"],
            [None, "T"],
        ),
        (
            "negative_priority_is_deprioritised",
            dimension([(["x"], ["low"], -5), (["x"], ["high"], 0)]),
            ["xyz"],
            ["high"],
        ),
        (
            "on_miss_does_not_fire_on_a_hit",
            dimension([(["x"], ["hit"], 0)], on_miss={"literal": "fallback"}),
            ["xyz", "q"],
            ["hit", "fallback"],
        ),
        (
            "empty_pattern_matches_every_string",
            dimension([([""], ["any"], 0), (["b"], ["bee"], 1)]),
            ["", "ab", None],
            ["any", "bee", None],
        ),
    ],
)
def test_karet_dimension_cases(name, dim, inputs, expected):
    assert evaluate(dim, inputs) == expected


def test_value_picks_a_value_column():
    dim = dimension(
        [(["CA"], ["Canada", "Americas"], 0), (["DE"], ["Germany, Fed. Rep.", "Europe"], 0)],
        match="exact",
        values=("country", "region"),
    )
    assert evaluate(dim, ["CA", "DE"], "region") == ["Americas", "Europe"]
    assert evaluate(dim, ["CA", "DE"]) == ["Canada", "Germany, Fed. Rep."]


def test_duplicate_exact_key_fails_every_reference():
    dim = dimension([(["A"], ["first"], 0), (["a"], ["second"], 0)], match="exact", case_insensitive=True)
    with pytest.raises(ExpressionError, match="dimension `d` has duplicate key `a`"):
        evaluate(dim, ["a"])


def test_duplicate_substring_patterns_are_allowed():
    assert evaluate(dimension([(["x"], ["a"], 0), (["x"], ["b"], 0)]), ["x"]) == ["a"]


def test_unknown_dimension_is_an_expression_error():
    node = NODE.validate_python({"kind": "dim_ref", "dim_id": "nope", "input": col("x")})
    with pytest.raises(ExpressionError, match="unknown dimension id: nope"):
        compile_expr(node, {}, {})


texts = st.text(ALPHABET, max_size=5)
rows = st.lists(
    st.tuples(
        st.lists(texts, min_size=1, max_size=3),
        st.tuples(texts, texts).map(list),
        st.integers(min_value=-2, max_value=2),
    ),
    max_size=6,
)
on_miss = st.sampled_from(["null", "passthrough", {"literal": "MISS"}])


@PROPERTY_SETTINGS
@given(
    rows=rows,
    match=st.sampled_from(["exact", "keyword_substring"]),
    case_insensitive=st.booleans(),
    miss=on_miss,
    inputs=st.lists(st.none() | texts, min_size=1, max_size=8),
    value_index=st.sampled_from([0, 1]),
)
def test_dim_ref_matches_the_reference(rows, match, case_insensitive, miss, inputs, value_index):
    dim = dimension(rows, match=match, case_insensitive=case_insensitive, on_miss=miss, values=("v0", "v1"))
    keys = [p.lower() if case_insensitive else p for patterns, _, _ in rows for p in patterns]
    if match == "exact" and len(keys) != len(set(keys)):
        with pytest.raises(ExpressionError, match="duplicate key"):
            evaluate(dim, inputs)
        return
    expected = [reference(dim, text, value_index) for text in inputs]
    got = evaluate(dim, inputs, f"v{value_index}")
    assert_series_equal(pl.Series(got, dtype=pl.String), pl.Series(expected, dtype=pl.String))
