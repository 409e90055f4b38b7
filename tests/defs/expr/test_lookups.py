import random
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from karet_defs.config.models import LookupMapping
from karet_defs.errors import ExpressionError, KaretError
from karet_defs.expr.lookups import build_lookup_registry, lookup_expr

SPENDING_CATEGORIES: dict[str, Any] = {
    "id": "categories",
    "match": "keyword_substring",
    "rows": [
        {"input_patterns": ["AMAZON", "TARGET"], "output": "SHOPPING"},
        {"input_patterns": ["PAYROLL", "DEPOSIT"], "output": "INCOME", "priority": 10},
    ],
    "catch_all": {"output": "OTHER"},
}

TREE: dict[str, Any] = {
    "id": "categories",
    "rows": [{"input_patterns": ["COFFEE"], "output": "FOOD"}],
    "children": [
        {
            "id": "merchants",
            "case_insensitive": True,
            "rows": [{"input_patterns": ["starbucks"], "output": "Starbucks"}],
            "catch_all": {"output": "UNKNOWN MERCHANT"},
            "children": [{"id": "chains", "rows": [{"input_patterns": ["Peet"], "output": "Peet's"}]}],
        },
        {"id": "banks", "rows": [{"input_patterns": ["COFFEE BANK"], "output": "Coffee Bank"}]},
    ],
    "catch_all": {"output": "OTHER"},
}


def _lookup(spec: dict[str, Any]) -> LookupMapping:
    return LookupMapping.model_validate(spec)


def _match(spec: dict[str, Any], texts: list[str | None]) -> pl.DataFrame:
    frame = pl.DataFrame({"text": texts}, schema={"text": pl.String})
    return frame.select(out=lookup_expr(_lookup(spec), pl.col("text")))


def _expected(values: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"out": values}, schema={"out": pl.String})


def test_registry_keys_top_level_ids_and_dotted_child_paths() -> None:
    registry = build_lookup_registry([_lookup(TREE), _lookup({"id": "accounts", "rows": []})])

    assert list(registry) == [
        "categories",
        "categories.merchants",
        "categories.merchants.chains",
        "categories.banks",
        "accounts",
    ]
    assert registry["categories.merchants.chains"].rows[0].output == "Peet's"


def test_extract_many_reports_overlapping_patterns_starting_at_the_same_position() -> None:
    found = pl.Series(["xABCx"]).str.extract_many(["AB", "ABC"], overlapping=True)

    assert sorted(found[0]) == ["AB", "ABC"]


@pytest.mark.parametrize(
    ("spec", "texts", "expected"),
    [
        pytest.param(
            SPENDING_CATEGORIES,
            ["AMAZON PAYROLL DEPOSIT", "AMAZON MKTP", "GROCERY", None],
            ["INCOME", "SHOPPING", "OTHER", None],
            id="spending_tracker_priority_then_catch_all",
        ),
        pytest.param(
            {"id": "merchants", "rows": [{"input_patterns": ["AMAZON"], "output": "Amazon"}]},
            ["AMAZON MKTP", "GROCERY", None],
            ["Amazon", None, None],
            id="no_catch_all_miss_is_null",
        ),
        pytest.param(
            {
                "id": "l",
                "rows": [
                    {"input_patterns": ["AB"], "output": "first"},
                    {"input_patterns": ["CD"], "output": "second"},
                ],
            },
            ["AB CD", "CD AB", "CD"],
            ["first", "first", "second"],
            id="tie_goes_to_earliest_row",
        ),
        pytest.param(
            {
                "id": "l",
                "rows": [
                    {"input_patterns": ["AB"], "output": "short", "priority": 0},
                    {"input_patterns": ["ABC"], "output": "long", "priority": 5},
                ],
            },
            ["ABC", "xABCx", "AB"],
            ["long", "long", "short"],
            id="overlapping_patterns_at_same_start",
        ),
        pytest.param(
            {
                "id": "l",
                "rows": [
                    {"input_patterns": ["ABC"], "output": "long", "priority": -1},
                    {"input_patterns": ["AB", "BC"], "output": "short", "priority": -1},
                ],
            },
            ["ABC", "BC"],
            ["long", "short"],
            id="negative_priorities_tie_to_earliest",
        ),
        pytest.param(
            {
                "id": "l",
                "rows": [
                    {"input_patterns": ["SHARED"], "output": "low", "priority": 1},
                    {"input_patterns": ["SHARED"], "output": "high", "priority": 2},
                    {"input_patterns": ["SHARED"], "output": "high-later", "priority": 2},
                ],
            },
            ["SHARED"],
            ["high"],
            id="same_pattern_in_several_rows",
        ),
        pytest.param(
            {
                "id": "l",
                "rows": [
                    {"input_patterns": [], "output": "never"},
                    {"input_patterns": [""], "output": "anything", "priority": -1},
                    {"input_patterns": ["FEE"], "output": "fees"},
                ],
            },
            ["BANK FEE", "café", "", None],
            ["fees", "anything", "anything", None],
            id="empty_pattern_matches_every_non_null_input",
        ),
        pytest.param(
            {
                "id": "l",
                "rows": [{"input_patterns": [], "output": "never"}],
                "catch_all": {"output": "OTHER"},
            },
            ["x", None],
            ["OTHER", None],
            id="rows_without_patterns_never_match",
        ),
        pytest.param({"id": "l", "rows": []}, ["x", None], [None, None], id="no_rows"),
        pytest.param(
            {"id": "l", "rows": [], "catch_all": {"output": "OTHER"}},
            ["x", "", None],
            ["OTHER", "OTHER", None],
            id="no_rows_catch_all_only",
        ),
        pytest.param(
            {"id": "l", "rows": [{"input_patterns": ["CAFÉ", "日本"], "output": "unicode"}]},
            ["LE CAFÉ", "LE CAFE", "東日本旅客鉄道", "é"],
            ["unicode", None, "unicode", None],
            id="unicode",
        ),
    ],
)
def test_keyword_substring(spec: dict[str, Any], texts: list[str | None], expected: list[str | None]) -> None:
    assert_frame_equal(_match(spec, texts), _expected(expected))


@pytest.mark.parametrize(
    ("spec", "texts", "expected"),
    [
        pytest.param(
            TREE,
            ["STARBUCKS COFFEE", "COFFEE BANK", "COFFEE", "Peet COFFEE", "TEA", None],
            ["Starbucks", "Coffee Bank", "FOOD", "Peet's", "OTHER", None],
            id="children_first_in_order_then_own_rows",
        ),
        pytest.param(
            {**TREE, "catch_all": None},
            ["TEA", "Starbucks", None],
            [None, "Starbucks", None],
            id="child_catch_all_ignored_under_parent",
        ),
        pytest.param(
            {
                "id": "outer",
                "case_insensitive": True,
                "rows": [{"input_patterns": ["Fee"], "output": "fee"}],
                "children": [{"id": "inner", "rows": [{"input_patterns": ["Atm"], "output": "atm"}]}],
            },
            ["atm fee", "Atm FEE", "ATM"],
            ["fee", "atm", None],
            id="case_insensitive_is_per_node",
        ),
        pytest.param(
            {"id": "l", "case_insensitive": True, "rows": [{"input_patterns": ["Café"], "output": "hit"}]},
            ["LE CAFÉ", "le café", "LE CAFE"],
            ["hit", "hit", None],
            id="case_insensitive_unicode",
        ),
    ],
)
def test_tree(spec: dict[str, Any], texts: list[str | None], expected: list[str | None]) -> None:
    assert_frame_equal(_match(spec, texts), _expected(expected))


def test_child_addressed_by_dotted_id_is_the_root_and_keeps_its_catch_all() -> None:
    merchants = build_lookup_registry([_lookup(TREE)])["categories.merchants"]
    frame = pl.DataFrame({"text": ["my starbucks", "Peet", "TEA", None]})

    result = frame.select(out=lookup_expr(merchants, pl.col("text")))

    assert_frame_equal(result, _expected(["Starbucks", "Peet's", "UNKNOWN MERCHANT", None]))


@pytest.mark.parametrize(
    ("spec", "texts", "expected"),
    [
        pytest.param(
            {
                "id": "l",
                "match": "exact",
                "rows": [
                    {"input_patterns": ["AMAZON"], "output": "Amazon"},
                    {"input_patterns": ["AMAZON", "AMZN"], "output": "Amzn", "priority": 3},
                    {"input_patterns": [""], "output": "blank"},
                ],
                "catch_all": {"output": "OTHER"},
            },
            ["AMAZON", "AMAZON MKTP", "AMZN", "", "amazon", None],
            ["Amzn", "OTHER", "Amzn", "blank", "OTHER", None],
            id="whole_string_equality_with_priority",
        ),
        pytest.param(
            {
                "id": "l",
                "match": "exact",
                "case_insensitive": True,
                "rows": [{"input_patterns": ["Amazon"], "output": "Amazon"}],
                "children": [{"id": "c", "rows": [{"input_patterns": ["AMZN"], "output": "child"}]}],
            },
            ["AMAZON", "amzn", "AMZN", "AMAZON MKTP"],
            ["Amazon", None, "child", None],
            id="exact_tree_per_node_case",
        ),
    ],
)
def test_exact(spec: dict[str, Any], texts: list[str | None], expected: list[str | None]) -> None:
    assert_frame_equal(_match(spec, texts), _expected(expected))


def test_unknown_match_mode_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="unsupported lookup match: regex"):
        lookup_expr(_lookup({"id": "l", "match": "regex", "rows": []}), pl.col("text"))
    assert issubclass(ExpressionError, KaretError)


def _reference(lookup: LookupMapping, text: str | None) -> str | None:
    """Slow, obviously-correct matcher straight from REFERENCE §1.5."""
    if text is None:
        return None
    hit = _reference_scan(lookup, text, exact=lookup.match == "exact")
    if hit is None and lookup.catch_all is not None:
        return lookup.catch_all.output
    return hit


def _reference_scan(node: LookupMapping, text: str, *, exact: bool) -> str | None:
    for child in node.children:
        hit = _reference_scan(child, text, exact=exact)
        if hit is not None:
            return hit
    subject = text.lower() if node.case_insensitive else text
    best = None
    for row in node.rows:
        patterns = [p.lower() if node.case_insensitive else p for p in row.input_patterns]
        if any(p == subject if exact else p in subject for p in patterns):
            if best is None or row.priority > best.priority:
                best = row
    return None if best is None else best.output


POOL = ["AB", "ABC", "BC", "B", "ab", "Café", "CAFÉ", "日本", "本", "xAB", "PAY", "PAYROLL", "ROLL", ""]
NOISE = ["", " ", "x", "é", "ß", "-", "Z"]


def _random_lookup(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    rows = [
        {
            "input_patterns": rng.sample(POOL, rng.randint(0, 3)),
            "output": f"out{depth}_{i}",
            "priority": rng.randint(-1, 2),
        }
        for i in range(rng.randint(0, 6))
    ]
    spec: dict[str, Any] = {
        "id": f"node{depth}",
        "case_insensitive": rng.random() < 0.4,
        "rows": rows,
        "catch_all": {"output": f"catch{depth}"} if rng.random() < 0.5 else None,
    }
    if depth < 2:
        spec["children"] = [_random_lookup(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    return spec


def _random_text(rng: random.Random) -> str | None:
    if rng.random() < 0.05:
        return None
    tokens = [rng.choice(POOL + NOISE) for _ in range(rng.randint(0, 4))]
    text = "".join(tokens)
    return text.swapcase() if rng.random() < 0.2 else text


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("match", ["keyword_substring", "exact"])
def test_vectorised_matcher_agrees_with_reference(seed: int, match: str) -> None:
    rng = random.Random(seed)
    lookup = _lookup({**_random_lookup(rng), "match": match})
    texts = [_random_text(rng) for _ in range(300)]
    frame = pl.DataFrame({"text": texts}, schema={"text": pl.String})

    result = frame.select(out=lookup_expr(lookup, pl.col("text")))

    assert_frame_equal(result, _expected([_reference(lookup, text) for text in texts]))
