"""Compiled expressions agree with a slow, row-by-row Python reference of REFERENCE §1.10 on random frames.

The generator builds well-typed trees of the string, boolean and arithmetic kinds (comparisons, ``concat``,
``coalesce``, ``if``, ``contains``, ``substring``, ``and``/``or``/``not``, ``upper``/``lower``/``trim``) with
``null`` literals anywhere, over frames whose cells include nulls, empty strings and non-ASCII text. Floats
follow Polars where IEEE leaves a choice: division by zero is ±inf or NaN, and NaN equals NaN and sorts
above every number. A second property throws arbitrary trees of every kind at the compiler: it returns an
expression or raises ``ExpressionError``, and the expression evaluates or fails with a Polars error that the
engine reports per file, never with a panic.
"""

import math
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import TypeAdapter, ValidationError

from karet_defs.config.models import AstNode, LookupMapping
from karet_defs.errors import ExpressionError
from karet_defs.expr.compile import compile_expr
from karet_defs.expr.lookups import build_lookup_registry

NODE = TypeAdapter(AstNode)
PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
# Characters whose case mapping and whitespace class agree between Python's and Rust's Unicode tables; with
# a combining accent, a final-sigma candidate, a character that grows when upper-cased and a 4-byte emoji.
ALPHABET = "aZz09 \t\n\u00a0\u2003-,'éÉßΣσİ日\u0301🙂"
LOOKUPS = build_lookup_registry(
    [LookupMapping.model_validate({"id": "cat", "rows": [{"input_patterns": ["a"], "output": "A"}]})]
)
SCHEMA = {"s1": pl.String, "s2": pl.String, "n1": pl.Float64, "n2": pl.Float64, "b1": pl.Boolean}

texts = st.text(ALPHABET, max_size=6)
floats = st.floats(min_value=-1e6, max_value=1e6) | st.sampled_from([0.0, -0.0, 1.0, 0.5])
frames = st.integers(min_value=1, max_value=8).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "s1": st.lists(st.none() | texts, min_size=n, max_size=n),
            "s2": st.lists(st.none() | st.just("") | texts, min_size=n, max_size=n),
            "n1": st.lists(st.none() | floats, min_size=n, max_size=n),
            "n2": st.lists(st.none() | floats, min_size=n, max_size=n),
            "b1": st.lists(st.none() | st.booleans(), min_size=n, max_size=n),
        }
    )
)

NULL: dict[str, Any] = {"kind": "null"}


def _leaves(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    if kind == "s":
        columns = st.sampled_from(["s1", "s2"]).map(lambda c: {"kind": "col", "name": c})
        return columns | texts.map(lambda v: {"kind": "str", "value": v}) | st.just(NULL)
    if kind == "n":
        columns = st.sampled_from(["n1", "n2"]).map(lambda c: {"kind": "col", "name": c})
        return columns | floats.map(lambda v: {"kind": "num", "value": v}) | st.just(NULL)
    return (
        st.just({"kind": "col", "name": "b1"})
        | st.booleans().map(lambda v: {"kind": "bool", "value": v})
        | st.just(NULL)
    )


def _typed(kind: str, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """A well-typed tree of result type ``kind`` (``s`` string, ``n`` number, ``b`` boolean)."""
    if depth == 0:
        return _leaves(kind)
    s, n, b = (st.deferred(lambda k=k: _typed(k, depth - 1)) for k in "snb")
    same = {"s": s, "n": n, "b": b}[kind]
    branches = [
        _leaves(kind),
        st.builds(lambda c, t, e: {"kind": "if", "cond": c, "then": t, "else": e}, b, same, same),
        st.lists(same, max_size=3).map(lambda args: {"kind": "coalesce", "args": args}),
    ]
    if kind == "s":
        branches += [
            st.builds(lambda k, i: {"kind": k, "input": i}, st.sampled_from(["upper", "lower", "trim"]), s),
            st.builds(
                lambda i, start, length: {"kind": "substring", "input": i, "start": start, "length": length},
                s,
                st.integers(min_value=0, max_value=5),
                st.none() | st.integers(min_value=0, max_value=5),
            ),
            st.builds(
                lambda sep, args: {"kind": "concat", "sep": sep, "args": args},
                st.sampled_from(["", " ", "-", "·"]),
                st.lists(s, max_size=3),
            ),
        ]
    elif kind == "n":
        branches.append(
            st.builds(
                lambda k, left, right: {"kind": k, "left": left, "right": right},
                st.sampled_from(["add", "sub", "mul", "div"]),
                n,
                n,
            )
        )
    else:
        comparison = st.sampled_from(["eq", "ne", "gt", "lt", "ge", "le"])
        branches += [
            st.builds(lambda i: {"kind": "not", "input": i}, b),
            st.builds(
                lambda k, left, right: {"kind": k, "left": left, "right": right},
                st.sampled_from(["and", "or"]),
                b,
                b,
            ),
            st.builds(lambda i, p: {"kind": "contains", "input": i, "pattern": p}, s, texts),
            st.builds(lambda k, left, right: {"kind": k, "left": left, "right": right}, comparison, n, n),
            st.builds(lambda k, left, right: {"kind": k, "left": left, "right": right}, comparison, s, s),
        ]
    return st.one_of(branches)


def _order(value: Any) -> tuple[int, Any]:
    # Polars' total order of floats: NaN equals NaN and sorts above +inf.
    if isinstance(value, float) and math.isnan(value):
        return (1, 0.0)
    return (0, value)


def _divide(left: float, right: float) -> float:
    if right != 0:
        return left / right
    if left == 0 or math.isnan(left):
        return math.nan
    return math.copysign(math.inf, left) * math.copysign(1.0, right)


COMPARE = {
    "eq": lambda a, b: _order(a) == _order(b),
    "ne": lambda a, b: _order(a) != _order(b),
    "gt": lambda a, b: _order(a) > _order(b),
    "lt": lambda a, b: _order(a) < _order(b),
    "ge": lambda a, b: _order(a) >= _order(b),
    "le": lambda a, b: _order(a) <= _order(b),
}
ARITHMETIC = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": _divide}


def reference(node: dict[str, Any], row: dict[str, Any]) -> Any:
    """REFERENCE §1.10, one row at a time: null in gives null out unless the table says otherwise."""
    kind = node["kind"]
    if kind == "col":
        return row[node["name"]]
    if kind in ("str", "num", "bool"):
        return node["value"]
    if kind == "null":
        return None
    if kind == "if":
        return reference(node["then"] if reference(node["cond"], row) is True else node["else"], row)
    if kind == "coalesce":
        return next((v for a in node["args"] if (v := reference(a, row)) is not None), None)
    if kind == "concat":
        parts = [v for a in node["args"] if (v := reference(a, row)) is not None]
        return node["sep"].join(parts)
    if kind in ("and", "or"):
        left, right = reference(node["left"], row), reference(node["right"], row)
        decisive = kind == "or"  # ``true`` decides an ``or``, ``false`` an ``and``, whatever the other side
        if decisive in (left, right):
            return decisive
        return None if None in (left, right) else not decisive
    if kind in ("add", "sub", "mul", "div", "eq", "ne", "gt", "lt", "ge", "le"):
        left, right = reference(node["left"], row), reference(node["right"], row)
        if left is None or right is None:
            return None
        return (ARITHMETIC | COMPARE)[kind](left, right)
    value = reference(node["input"], row)
    if value is None:
        return None
    if kind == "not":
        return not value
    if kind == "upper":
        return value.upper()
    if kind == "lower":
        return value.lower()
    if kind == "trim":
        return value.strip()
    if kind == "contains":
        return node["pattern"] in value
    if kind == "substring":
        end = None if node["length"] is None else node["start"] + node["length"]
        return value[node["start"] : end]
    raise AssertionError(f"no reference for {kind}")


def _same(got: Any, expected: Any) -> bool:
    if isinstance(got, float) and isinstance(expected, float):
        return _order(got) == _order(expected)
    return got == expected and type(got) is type(expected)


def _compiled_values(node: dict[str, Any], data: dict[str, list[Any]]) -> list[Any]:
    frame = pl.DataFrame(data, schema=SCHEMA)
    # with_columns broadcasts literals to the frame's height, as a mapping's select does.
    return frame.with_columns(out=compile_expr(NODE.validate_python(node), LOOKUPS))["out"].to_list()


@PROPERTY_SETTINGS
@given(st.sampled_from("snb").flatmap(lambda kind: _typed(kind, depth=3)), frames)
def test_compiled_expressions_agree_with_the_reference(node, data):
    got = _compiled_values(node, data)
    rows = [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    expected = [reference(node, row) for row in rows]
    mismatches = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected, strict=True)) if not _same(g, e)]
    assert not mismatches, f"row, compiled, reference: {mismatches}"


ALL_KINDS = """
    col str num bool null add sub mul div eq ne gt lt ge le and or not upper lower trim year month day
    contains substring concat if coalesce parse_date cast lookup_ref from_unix
""".split()
FIELD_VALUES = {
    "name": st.sampled_from([*SCHEMA, "missing"]),
    "value": st.none() | st.booleans() | floats | texts,
    "pattern": texts,
    "start": st.integers(min_value=-1, max_value=4),
    "length": st.none() | st.integers(min_value=-1, max_value=4),
    "sep": texts,
    "format": st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%Q", "", "%"]),
    "to": st.sampled_from(["int64", "float64", "string", "date", "bool", "text"]),
    "lookup_id": st.sampled_from(["cat", "cat.child", "nope", ""]),
    "unit": st.sampled_from(["s", "ms", "us"]),
}


def _any_tree(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Trees of every kind with loosely chosen fields: well-typed or not, complete or not."""
    child = st.deferred(lambda: _any_tree(depth - 1)) if depth else st.just(NULL)
    fields = {
        **FIELD_VALUES,
        **dict.fromkeys(("left", "right", "input", "cond", "then", "else"), child),
        "args": st.lists(child, max_size=3),
    }
    return st.builds(
        lambda kind, extra: {"kind": kind, **extra},
        st.sampled_from(ALL_KINDS),
        st.fixed_dictionaries({}, optional=fields),
    )


@PROPERTY_SETTINGS
@given(_any_tree(depth=3), frames)
def test_any_tree_compiles_or_fails_with_a_code_and_evaluates_or_fails_as_polars(tree, data):
    try:
        node = NODE.validate_python(tree)
    except ValidationError:
        return  # the model refuses it; ``parse_pipeline`` turns that into ``schema`` (see config properties)
    try:
        expr = compile_expr(node, LOOKUPS)
    except ExpressionError as exc:
        assert exc.code == "expression_error"
        return
    frame = pl.DataFrame(data, schema=SCHEMA)
    try:
        frame.lazy().with_columns(out=expr).collect()
    except pl.exceptions.PolarsError:
        pass  # a type error the engine reports per file (`file <key>: ...`)
