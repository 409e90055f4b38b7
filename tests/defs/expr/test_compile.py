from datetime import date
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import TypeAdapter

from karet_defs.config.models import AstNode, LookupMapping
from karet_defs.errors import ExpressionError
from karet_defs.expr.compile import SHARED_PREFIX, compile_columns, compile_expr
from karet_defs.expr.lookups import build_lookup_registry

NODE = TypeAdapter(AstNode)

NUMBERS = pl.DataFrame({"a": [6.0, None, 2.0, -7.0], "b": [3.0, 1.0, None, 2.0]})
FLAGS = pl.DataFrame(
    {"p": [True, True, False, None, None, None], "q": [None, False, None, True, False, None]},
    schema={"p": pl.Boolean, "q": pl.Boolean},
)
TEXT = pl.DataFrame({"s": ["  Café Noir ", "abc", "", None], "t": ["x", None, "y", None]})
DATES = pl.DataFrame(
    {
        "us": ["01/31/2024", "13/01/2024", "2024-01-31", None],
        "dmy": ["05-Jan-2024", "5-Jan-2024", "05-Foo-2024", None],
        "iso": ["2024-02-29", "2024-02-30", "29/02/2024", None],
    }
)
EPOCHS = pl.DataFrame({"sec": [0, 1704412800, -1, None], "ms": [0, 1704412800123, -1, None]})
CASTS = pl.DataFrame(
    {
        "amount": [18.40, -2.7, 1e30, None],
        "text": ["12", "1.5", "abc", None],
        "flag": ["true", "FALSE", "yes", None],
        "day": [date(2024, 1, 31), date(1999, 12, 1), None, None],
    }
)
SPENDING_LOOKUPS = build_lookup_registry(
    [
        LookupMapping.model_validate(
            {
                "id": "categories",
                "rows": [
                    {"input_patterns": ["AMAZON"], "output": "SHOPPING"},
                    {"input_patterns": ["PAYROLL"], "output": "INCOME", "priority": 10},
                ],
                "catch_all": {"output": "OTHER"},
                "children": [
                    {"id": "merchants", "rows": [{"input_patterns": ["AMAZON"], "output": "Amazon"}]},
                ],
            }
        )
    ]
)
SPENDING = pl.DataFrame({"description": ["AMAZON PAYROLL DEPOSIT", "GROCERY", "AMAZON MKTP", None]})


def col(name: str) -> dict[str, Any]:
    return {"kind": "col", "name": name}


def num(value: float) -> dict[str, Any]:
    return {"kind": "num", "value": value}


def string(value: str) -> dict[str, Any]:
    return {"kind": "str", "value": value}


NULL: dict[str, Any] = {"kind": "null"}


def _evaluate(frame: pl.DataFrame, node: dict[str, Any]) -> pl.DataFrame:
    expr = compile_expr(NODE.validate_python(node), SPENDING_LOOKUPS)
    # with_columns broadcasts literals to the frame's height, as a mapping's select does.
    return frame.with_columns(out=expr).select("out")


def _check(frame: pl.DataFrame, node: dict[str, Any], expected: list[Any], dtype: pl.DataType) -> None:
    assert_frame_equal(_evaluate(frame, node), pl.DataFrame({"out": expected}, schema={"out": dtype}))


@pytest.mark.parametrize(
    ("node", "expected", "dtype"),
    [
        pytest.param(string("x"), ["x"] * 4, pl.String(), id="str"),
        pytest.param(num(100), [100.0] * 4, pl.Float64(), id="num_is_float64"),
        pytest.param({"kind": "bool", "value": True}, [True] * 4, pl.Boolean(), id="bool"),
        pytest.param(NULL, [None] * 4, pl.Null(), id="null"),
        pytest.param(col("a"), [6.0, None, 2.0, -7.0], pl.Float64(), id="col"),
    ],
)
def test_literals_and_columns(node: dict[str, Any], expected: list[Any], dtype: pl.DataType) -> None:
    _check(NUMBERS, node, expected, dtype)


@pytest.mark.parametrize(
    ("kind", "expected", "dtype"),
    [
        pytest.param("add", [9.0, None, None, -5.0], pl.Float64(), id="add"),
        pytest.param("sub", [3.0, None, None, -9.0], pl.Float64(), id="sub"),
        pytest.param("mul", [18.0, None, None, -14.0], pl.Float64(), id="mul"),
        pytest.param("div", [2.0, None, None, -3.5], pl.Float64(), id="div"),
        pytest.param("eq", [False, None, None, False], pl.Boolean(), id="eq"),
        pytest.param("ne", [True, None, None, True], pl.Boolean(), id="ne"),
        pytest.param("gt", [True, None, None, False], pl.Boolean(), id="gt"),
        pytest.param("lt", [False, None, None, True], pl.Boolean(), id="lt"),
        pytest.param("ge", [True, None, None, False], pl.Boolean(), id="ge"),
        pytest.param("le", [False, None, None, True], pl.Boolean(), id="le"),
    ],
)
def test_arithmetic_and_comparison_propagate_null(kind: str, expected: list[Any], dtype: pl.DataType) -> None:
    _check(NUMBERS, {"kind": kind, "left": col("a"), "right": col("b")}, expected, dtype)


@pytest.mark.parametrize(
    ("node", "expected", "dtype"),
    [
        pytest.param(
            {"kind": "div", "left": {"kind": "col", "name": "a"}, "right": num(0)},
            [float("inf"), None, float("inf"), float("-inf")],
            pl.Float64(),
            id="div_by_zero_is_inf_not_error",
        ),
        pytest.param(
            {"kind": "add", "left": col("a"), "right": NULL}, [None] * 4, pl.Float64(), id="add_null"
        ),
        pytest.param({"kind": "eq", "left": col("a"), "right": NULL}, [None] * 4, pl.Boolean(), id="eq_null"),
    ],
)
def test_arithmetic_edges(node: dict[str, Any], expected: list[Any], dtype: pl.DataType) -> None:
    _check(NUMBERS, node, expected, dtype)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param(
            {"kind": "and", "left": col("p"), "right": col("q")},
            [None, False, False, None, False, None],
            id="and_is_kleene_null_and_false_is_false",
        ),
        pytest.param(
            {"kind": "or", "left": col("p"), "right": col("q")},
            [True, True, None, True, None, None],
            id="or_is_kleene_null_or_true_is_true",
        ),
        pytest.param({"kind": "not", "input": col("p")}, [False, False, True, None, None, None], id="not"),
        pytest.param({"kind": "not", "input": NULL}, [None] * 6, id="not_null_literal"),
        pytest.param(
            {"kind": "and", "left": NULL, "right": col("p")},
            [None, None, False, None, None, None],
            id="and_null_literal",
        ),
    ],
)
def test_boolean_logic(node: dict[str, Any], expected: list[Any]) -> None:
    _check(FLAGS, node, expected, pl.Boolean())


@pytest.mark.parametrize(
    ("node", "expected", "dtype"),
    [
        pytest.param(
            {"kind": "contains", "input": col("s"), "pattern": "é N"},
            [True, False, False, None],
            pl.Boolean(),
            id="contains",
        ),
        pytest.param(
            {"kind": "contains", "input": col("s"), "pattern": "a.c"},
            [False, False, False, None],
            pl.Boolean(),
            id="contains_is_literal_not_regex",
        ),
        pytest.param(
            {"kind": "contains", "input": col("s"), "pattern": "ABC"},
            [False, False, False, None],
            pl.Boolean(),
            id="contains_is_case_sensitive",
        ),
        pytest.param(
            {"kind": "upper", "input": col("s")}, ["  CAFÉ NOIR ", "ABC", "", None], pl.String(), id="upper"
        ),
        pytest.param(
            {"kind": "lower", "input": col("s")}, ["  café noir ", "abc", "", None], pl.String(), id="lower"
        ),
        pytest.param(
            {"kind": "trim", "input": col("s")}, ["Café Noir", "abc", "", None], pl.String(), id="trim"
        ),
        pytest.param(
            {"kind": "substring", "input": col("s"), "start": 2, "length": 4},
            ["Café", "c", "", None],
            pl.String(),
            id="substring_counts_characters",
        ),
        pytest.param(
            {"kind": "substring", "input": col("s"), "start": 7},
            ["Noir ", "", "", None],
            pl.String(),
            id="substring_without_length_runs_to_end",
        ),
        pytest.param(
            {"kind": "substring", "input": col("s"), "start": 0, "length": 0},
            ["", "", "", None],
            pl.String(),
            id="substring_zero_length",
        ),
        pytest.param({"kind": "upper", "input": NULL}, [None] * 4, pl.String(), id="upper_null_literal"),
        pytest.param(
            {"kind": "contains", "input": NULL, "pattern": "x"}, [None] * 4, pl.Boolean(), id="contains_null"
        ),
    ],
)
def test_string_operators(node: dict[str, Any], expected: list[Any], dtype: pl.DataType) -> None:
    _check(TEXT, node, expected, dtype)


@pytest.mark.parametrize(
    ("node", "expected", "dtype"),
    [
        pytest.param(
            {"kind": "concat", "sep": " ", "args": [string("FROM"), NULL]},
            ["FROM"] * 4,
            pl.String(),
            id="concat_skips_null_literal",
        ),
        pytest.param(
            {"kind": "concat", "sep": "-", "args": [col("t"), string("k"), col("t")]},
            ["x-k-x", "k", "y-k-y", "k"],
            pl.String(),
            id="concat_skips_null_values_and_their_separators",
        ),
        pytest.param(
            {"kind": "concat", "sep": "-", "args": [col("t"), NULL]},
            ["x", "", "y", ""],
            pl.String(),
            id="concat_all_null_is_empty_string",
        ),
        pytest.param(
            {"kind": "concat", "args": []}, [""] * 4, pl.String(), id="concat_no_args_is_empty_string"
        ),
        pytest.param(
            {
                "kind": "if",
                "cond": {"kind": "eq", "left": col("t"), "right": string("x")},
                "then": string("X"),
                "else": col("s"),
            },
            ["X", "abc", "", None],
            pl.String(),
            id="if_null_cond_takes_else",
        ),
        pytest.param(
            {"kind": "if", "cond": NULL, "then": num(1), "else": NULL},
            [None] * 4,
            pl.Float64(),
            id="if_null_literal_cond_and_branch",
        ),
        pytest.param(
            {"kind": "coalesce", "args": [col("t"), NULL, col("s"), string("none")]},
            ["x", "abc", "y", "none"],
            pl.String(),
            id="coalesce_first_non_null",
        ),
        pytest.param({"kind": "coalesce", "args": []}, [None] * 4, pl.Null(), id="coalesce_empty_is_null"),
        pytest.param(
            {"kind": "coalesce", "args": [NULL, NULL]}, [None] * 4, pl.Null(), id="coalesce_all_null_is_null"
        ),
    ],
)
def test_concat_if_coalesce(node: dict[str, Any], expected: list[Any], dtype: pl.DataType) -> None:
    _check(TEXT, node, expected, dtype)


@pytest.mark.parametrize(
    ("node", "expected", "dtype"),
    [
        pytest.param(
            {"kind": "parse_date", "input": col("us"), "format": "%m/%d/%Y"},
            [date(2024, 1, 31), None, None, None],
            pl.Date(),
            id="parse_date_us_non_strict",
        ),
        pytest.param(
            {"kind": "parse_date", "input": col("dmy"), "format": "%d-%b-%Y"},
            [date(2024, 1, 5), date(2024, 1, 5), None, None],
            pl.Date(),
            id="parse_date_month_abbreviation_non_strict",
        ),
        pytest.param(
            {"kind": "parse_date", "input": col("iso")},
            [date(2024, 2, 29), None, None, None],
            pl.Date(),
            id="parse_date_default_iso",
        ),
        pytest.param(
            {"kind": "parse_date", "input": NULL}, [None] * 4, pl.Date(), id="parse_date_null_literal"
        ),
        pytest.param(
            {"kind": "year", "input": {"kind": "parse_date", "input": col("iso")}},
            [2024, None, None, None],
            pl.Int64(),
            id="year",
        ),
        pytest.param(
            {"kind": "month", "input": {"kind": "parse_date", "input": col("iso")}},
            [2, None, None, None],
            pl.Int64(),
            id="month",
        ),
        pytest.param(
            {"kind": "day", "input": {"kind": "parse_date", "input": col("iso")}},
            [29, None, None, None],
            pl.Int64(),
            id="day",
        ),
        pytest.param({"kind": "year", "input": NULL}, [None] * 4, pl.Int64(), id="year_null_literal"),
    ],
)
def test_dates(node: dict[str, Any], expected: list[Any], dtype: pl.DataType) -> None:
    _check(DATES, node, expected, dtype)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param(
            {"kind": "from_unix", "input": col("sec")},
            [date(1970, 1, 1), date(2024, 1, 5), date(1969, 12, 31), None],
            id="seconds_by_default",
        ),
        pytest.param(
            {"kind": "from_unix", "input": col("ms"), "unit": "ms"},
            [date(1970, 1, 1), date(2024, 1, 5), date(1969, 12, 31), None],
            id="milliseconds",
        ),
        pytest.param(
            {"kind": "from_unix", "input": {"kind": "mul", "left": col("sec"), "right": num(1)}},
            [date(1970, 1, 1), date(2024, 1, 5), date(1969, 12, 31), None],
            id="float_seconds",
        ),
        pytest.param({"kind": "from_unix", "input": NULL}, [None] * 4, id="null_literal"),
    ],
)
def test_from_unix(node: dict[str, Any], expected: list[Any]) -> None:
    _check(EPOCHS, node, expected, pl.Date())


@pytest.mark.parametrize(
    ("node", "expected", "dtype"),
    [
        pytest.param(
            {
                "kind": "cast",
                "to": "int64",
                "input": {"kind": "mul", "left": col("amount"), "right": num(100)},
            },
            [1839, -270, None, None],
            pl.Int64(),
            id="float_to_int_truncates_toward_zero",
        ),
        pytest.param(
            {"kind": "cast", "to": "int64", "input": col("text")},
            [12, None, None, None],
            pl.Int64(),
            id="str_int",
        ),
        pytest.param(
            {"kind": "cast", "to": "float64", "input": col("text")},
            [12.0, 1.5, None, None],
            pl.Float64(),
            id="str_to_float",
        ),
        pytest.param(
            {"kind": "cast", "to": "string", "input": col("amount")},
            ["18.4", "-2.7", "1e+30", None],
            pl.String(),
            id="float_to_string",
        ),
        pytest.param(
            {"kind": "cast", "to": "string", "input": col("day")},
            ["2024-01-31", "1999-12-01", None, None],
            pl.String(),
            id="date_to_string_is_iso",
        ),
        pytest.param(
            {"kind": "cast", "to": "date", "input": {"kind": "cast", "to": "string", "input": col("day")}},
            [date(2024, 1, 31), date(1999, 12, 1), None, None],
            pl.Date(),
            id="iso_string_to_date",
        ),
        pytest.param(
            {"kind": "cast", "to": "date", "input": col("text")},
            [None] * 4,
            pl.Date(),
            id="non_iso_string_to_date",
        ),
        pytest.param(
            {"kind": "cast", "to": "date", "input": col("day")},
            [date(2024, 1, 31), date(1999, 12, 1), None, None],
            pl.Date(),
            id="date_to_date",
        ),
        pytest.param(
            {"kind": "cast", "to": "bool", "input": col("flag")},
            [True, False, None, None],
            pl.Boolean(),
            id="string_to_bool_reads_true_false",
        ),
        pytest.param(
            {"kind": "cast", "to": "bool", "input": col("amount")},
            [True, True, True, None],
            pl.Boolean(),
            id="number_to_bool_is_non_zero",
        ),
        pytest.param(
            {"kind": "cast", "to": "int64", "input": NULL}, [None] * 4, pl.Int64(), id="null_literal"
        ),
    ],
)
def test_cast_is_non_strict(node: dict[str, Any], expected: list[Any], dtype: pl.DataType) -> None:
    _check(CASTS, node, expected, dtype)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param(
            {"kind": "lookup_ref", "lookup_id": "categories", "input": col("description")},
            ["Amazon", "OTHER", "Amazon", None],
            id="children_first_then_catch_all",
        ),
        pytest.param(
            {"kind": "lookup_ref", "lookup_id": "categories.merchants", "input": col("description")},
            ["Amazon", None, "Amazon", None],
            id="dotted_child_without_catch_all_misses_to_null",
        ),
        pytest.param(
            {
                "kind": "coalesce",
                "args": [
                    {"kind": "lookup_ref", "lookup_id": "categories.merchants", "input": col("description")},
                    col("description"),
                ],
            },
            ["Amazon", "GROCERY", "Amazon", None],
            id="spending_tracker_merchant_or_description",
        ),
        pytest.param(
            {"kind": "lookup_ref", "lookup_id": "categories", "input": NULL},
            [None] * 4,
            id="null_literal_input_skips_catch_all",
        ),
    ],
)
def test_lookup_ref(node: dict[str, Any], expected: list[Any]) -> None:
    _check(SPENDING, node, expected, pl.String())


def test_spending_tracker_priority_example() -> None:
    registry = build_lookup_registry(
        [LookupMapping.model_validate({**SPENDING_LOOKUPS["categories"].model_dump(), "children": []})]
    )
    node = NODE.validate_python(
        {"kind": "lookup_ref", "lookup_id": "categories", "input": col("description")}
    )

    result = SPENDING.select(out=compile_expr(node, registry))

    expected = pl.DataFrame({"out": ["INCOME", "OTHER", "SHOPPING", None]})
    assert_frame_equal(result, expected)


def test_unknown_lookup_id_is_an_expression_error() -> None:
    node = NODE.validate_python({"kind": "lookup_ref", "lookup_id": "nope", "input": col("description")})

    with pytest.raises(ExpressionError, match="unknown lookup id: nope"):
        compile_expr(node, SPENDING_LOOKUPS)


def test_nested_expression_compiles_lazily() -> None:
    node = NODE.validate_python(
        {
            "kind": "concat",
            "sep": " / ",
            "args": [
                {"kind": "upper", "input": {"kind": "trim", "input": col("s")}},
                {
                    "kind": "if",
                    "cond": {"kind": "contains", "input": col("s"), "pattern": "Café"},
                    "then": string("coffee"),
                    "else": NULL,
                },
            ],
        }
    )

    result = TEXT.lazy().select(out=compile_expr(node, {})).collect()

    assert_frame_equal(result, pl.DataFrame({"out": ["CAFÉ NOIR / coffee", "ABC", "", ""]}))


def _columns(nodes: dict[str, dict[str, Any]]) -> list[tuple[str, AstNode]]:
    return [(name, NODE.validate_python(node)) for name, node in nodes.items()]


CLEANED = {"kind": "upper", "input": {"kind": "trim", "input": col("s")}}
SHARED_COLUMNS = {
    "cleaned": CLEANED,
    "tagged": {"kind": "concat", "sep": ":", "args": [CLEANED, col("t")]},
    "tagged_twice": {
        "kind": "concat",
        "sep": "|",
        "args": [{"kind": "concat", "sep": ":", "args": [CLEANED, col("t")]}, CLEANED],
    },
    "length_of_trimmed": {"kind": "substring", "input": {"kind": "trim", "input": col("s")}, "start": 0},
    "plain": col("t"),
}


def test_compiled_columns_match_column_by_column_compilation() -> None:
    columns = _columns(SHARED_COLUMNS)

    compiled = compile_columns(columns, {})
    result = compiled.select(TEXT.lazy()).collect()

    expected = TEXT.select(compile_expr(node, {}).alias(name) for name, node in columns)
    assert_frame_equal(result, expected)
    assert not [name for name in result.columns if name.startswith(SHARED_PREFIX)]


def test_shared_subexpressions_are_evaluated_once_in_dependency_order() -> None:
    compiled = compile_columns(_columns(SHARED_COLUMNS), {})

    plan = compiled.select(TEXT.lazy()).explain(engine="streaming")

    # upper(trim(s)) occurs four times and concat(upper(trim(s)), t) twice: each is computed once, the
    # concat after the value it reads; trim(s) alone, in two places, is shared below them.
    assert plan.count("str.strip_chars") == 1
    assert plan.count("str.to_uppercase()") == 1
    assert plan.count('str.concat_horizontal([col("t")])') == 1
    assert [len(step) for step in compiled.steps] == [1, 1, 1]


def test_columns_kept_beside_the_outputs() -> None:
    compiled = compile_columns(_columns({"cleaned": CLEANED}), {})

    result = compiled.select(TEXT.lazy(), keep=["t"]).collect()

    assert result.columns == ["cleaned", "t"]
    assert result["cleaned"].to_list() == ["CAFÉ NOIR", "ABC", "", None]
