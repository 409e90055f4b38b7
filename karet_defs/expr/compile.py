"""Compile the AstNode language (REFERENCE §1.10) into one Polars expression, kind by kind (REFERENCE §7).

Every operator propagates null unless §1.10 says otherwise: ``concat`` skips null arguments, ``if`` takes the
else branch on a null condition, ``coalesce`` picks the first non-null argument, and ``and``/``or`` follow
Polars' three-valued (Kleene, SQL) logic, so ``null and false`` is false and ``null or true`` is true. The
``null`` literal has Polars' Null dtype, which unifies with any other type; operators that need a specific
input type (strings, booleans, dates, epochs) cast a Null-typed input first, so they return null instead of
failing. Casts are non-strict: unparseable values become null. Type errors on real columns (a string operator
on a numeric column) surface when the frame is collected, as in Karet's worker.
"""

import operator
from collections.abc import Callable, Mapping
from functools import cache

import polars as pl

from karet_defs.config.models import (
    AstNode,
    Binary,
    Bool,
    Cast,
    Coalesce,
    Col,
    Concat,
    Contains,
    FromUnix,
    If,
    LookupMapping,
    LookupRef,
    Null,
    Num,
    ParseDate,
    Str,
    Substring,
    Unary,
)
from karet_defs.errors import ExpressionError
from karet_defs.expr.lookups import lookup_expr

_BINARY: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "lt": operator.lt,
    "ge": operator.ge,
    "le": operator.le,
    "and": lambda left, right: _typed(left, pl.Boolean) & _typed(right, pl.Boolean),
    "or": lambda left, right: _typed(left, pl.Boolean) | _typed(right, pl.Boolean),
}

_UNARY: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "not": lambda e: ~_typed(e, pl.Boolean),
    "upper": lambda e: _typed(e, pl.String).str.to_uppercase(),
    "lower": lambda e: _typed(e, pl.String).str.to_lowercase(),
    "trim": lambda e: _typed(e, pl.String).str.strip_chars(),
    "year": lambda e: _typed(e, pl.Date).dt.year().cast(pl.Int64),
    "month": lambda e: _typed(e, pl.Date).dt.month().cast(pl.Int64),
    "day": lambda e: _typed(e, pl.Date).dt.day().cast(pl.Int64),
}

_CAST_TYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "string": pl.String(),
    "date": pl.Date(),
    "bool": pl.Boolean(),
}


def compile_expr(node: AstNode, lookups: Mapping[str, LookupMapping]) -> pl.Expr:
    """Compile ``node`` to a Polars expression; ``lookups`` is the registry of ``build_lookup_registry``."""
    match node:
        case Col():
            return pl.col(node.name)
        case Str():
            return pl.lit(node.value, dtype=pl.String)
        case Num():
            return pl.lit(node.value, dtype=pl.Float64)
        case Bool():
            return pl.lit(node.value, dtype=pl.Boolean)
        case Null():
            return pl.lit(None)
        case Binary():
            return _BINARY[node.kind](compile_expr(node.left, lookups), compile_expr(node.right, lookups))
        case Unary():
            return _UNARY[node.kind](compile_expr(node.input, lookups))
        case Contains():
            return _typed(compile_expr(node.input, lookups), pl.String).str.contains(
                node.pattern, literal=True
            )
        case Substring():
            return _typed(compile_expr(node.input, lookups), pl.String).str.slice(node.start, node.length)
        case Concat():
            if not node.args:
                return pl.lit("", dtype=pl.String)
            args = [compile_expr(arg, lookups) for arg in node.args]
            return pl.concat_str(args, separator=node.sep, ignore_nulls=True)
        case If():
            cond = _typed(compile_expr(node.cond, lookups), pl.Boolean)
            then = compile_expr(node.then, lookups)
            return pl.when(cond).then(then).otherwise(compile_expr(node.else_, lookups))
        case Coalesce():
            if not node.args:
                return pl.lit(None)
            return pl.coalesce([compile_expr(arg, lookups) for arg in node.args])
        case ParseDate():
            value = _typed(compile_expr(node.input, lookups), pl.String)
            return value.str.to_date(node.format, strict=False)
        case Cast():
            return _cast(compile_expr(node.input, lookups), node.to)
        case LookupRef():
            lookup = lookups.get(node.lookup_id)
            if lookup is None:
                raise ExpressionError(f"unknown lookup id: {node.lookup_id}")
            return lookup_expr(lookup, _typed(compile_expr(node.input, lookups), pl.String))
        case FromUnix():
            epoch = _typed(compile_expr(node.input, lookups), pl.Int64)
            # Naive datetimes are UTC, so the cast keeps the UTC calendar day.
            return pl.from_epoch(epoch, time_unit=node.unit).cast(pl.Date)
    raise ExpressionError(f"unknown expression kind: {node.kind}")


def _typed(expr: pl.Expr, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    # Only the Null dtype (a null literal) is converted; real type mismatches must still fail loudly.
    return expr.pipe_with_dtype(_null_to(dtype))


@cache
def _null_to(dtype: pl.DataType | type[pl.DataType]) -> Callable[[pl.Expr, pl.DataType], pl.Expr]:
    # One function object per dtype: identical subtrees then compare equal, so Polars' common
    # subexpression elimination computes e.g. upper(trim(description)) once per frame, not per column.
    return lambda e, current: e.cast(dtype) if current == pl.Null else e


def _cast(expr: pl.Expr, to: str) -> pl.Expr:
    target = _CAST_TYPES[to]

    def choose(e: pl.Expr, current: pl.DataType) -> pl.Expr:
        # Polars 2 refuses String -> Date and String -> Boolean casts, so text is parsed explicitly.
        if current == pl.String and to == "date":
            return e.str.to_date("%Y-%m-%d", strict=False)
        if current == pl.String and to == "bool":
            return e.str.to_lowercase().replace_strict(
                ["true", "false"], [True, False], default=None, return_dtype=pl.Boolean
            )
        return e.cast(target, strict=False)

    return expr.pipe_with_dtype(choose)
