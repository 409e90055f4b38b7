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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    DimRef,
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
from karet_defs.config.walk import children
from karet_defs.errors import ExpressionError
from karet_defs.expr.dimensions import DimensionTable, dim_expr
from karet_defs.expr.lookups import lookup_expr

# Hoisted shared subexpressions live in columns named so no source column can plausibly collide.
SHARED_PREFIX = "__karet_shared_"
_LEAVES = (Col, Str, Num, Bool, Null)

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


Dimensions = Mapping[str, DimensionTable]


def compile_expr(
    node: AstNode, lookups: Mapping[str, LookupMapping], dimensions: Dimensions | None = None
) -> pl.Expr:
    """Compile ``node`` to a Polars expression; ``lookups`` is the registry of ``build_lookup_registry``,
    ``dimensions`` the pipeline's dimensions with their rows, by id."""
    return _Compiler(lookups, {}, dimensions or {}).expr(node)


@dataclass(frozen=True)
class CompiledColumns:
    """A mapping's output columns, with the subexpressions they share computed once beforehand.

    Polars' common subexpression elimination does not run in the streaming engine, so without this the
    Spending mapping cleans every description four times and parses every date three times.
    """

    steps: tuple[tuple[pl.Expr, ...], ...]
    outputs: tuple[pl.Expr, ...]

    def select(self, frame: pl.LazyFrame, *, keep: Sequence[str] = ()) -> pl.LazyFrame:
        for step in self.steps:
            frame = frame.with_columns(step)
        return frame.select([*self.outputs, *(pl.col(name) for name in keep)])


def compile_columns(
    columns: Sequence[tuple[str, AstNode]],
    lookups: Mapping[str, LookupMapping],
    dimensions: Dimensions | None = None,
) -> CompiledColumns:
    """Compile named output columns; a non-leaf subtree that occurs in two places is evaluated once."""
    seen: Counter[str] = Counter()
    order: list[tuple[str, AstNode]] = []  # first sightings, operands before the nodes that use them

    def visit(node: AstNode) -> None:
        key = node.model_dump_json(by_alias=True)
        seen[key] += 1
        if seen[key] == 1:
            # Operands of a repeated subtree are counted once: hoisting the subtree already shares them.
            for child in children(node):
                visit(child)
            order.append((key, node))

    for _, node in columns:
        visit(node)
    shared = {
        key: f"{SHARED_PREFIX}{index}"
        for index, (key, _) in enumerate(
            (key, node) for key, node in order if seen[key] > 1 and not isinstance(node, _LEAVES)
        )
    }
    level: dict[str, int] = {}
    steps: list[list[pl.Expr]] = []
    for key, node in order:
        if key not in shared:
            continue
        # Operands come first in ``order``, so every shared operand already has its level.
        level[key] = 1 + max((level[k] for k in _shared_operands(node, shared)), default=-1)
        if level[key] == len(steps):
            steps.append([])
        inner = _Compiler(lookups, {k: v for k, v in shared.items() if k != key}, dimensions or {})
        steps[level[key]].append(inner.expr(node).alias(shared[key]))
    compiler = _Compiler(lookups, shared, dimensions or {})
    outputs = tuple(compiler.expr(node).alias(name) for name, node in columns)
    return CompiledColumns(tuple(tuple(step) for step in steps), outputs)


def _shared_operands(node: AstNode, shared: Mapping[str, str]) -> list[str]:
    """Keys of the shared subtrees directly below ``node`` (not looking inside them)."""
    found: list[str] = []
    stack = list(children(node))
    while stack:
        current = stack.pop()
        key = current.model_dump_json(by_alias=True)
        if key in shared:
            found.append(key)
        else:
            stack.extend(children(current))
    return found


@dataclass(frozen=True)
class _Compiler:
    lookups: Mapping[str, LookupMapping]
    shared: Mapping[str, str]  # subtree (its JSON) -> the column already holding its value
    dimensions: Dimensions

    def expr(self, node: AstNode) -> pl.Expr:
        if self.shared and not isinstance(node, _LEAVES):
            name = self.shared.get(node.model_dump_json(by_alias=True))
            if name is not None:
                return pl.col(name)
        return self._compile(node)

    def _compile(self, node: AstNode) -> pl.Expr:
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
                return _BINARY[node.kind](self.expr(node.left), self.expr(node.right))
            case Unary():
                return _UNARY[node.kind](self.expr(node.input))
            case Contains():
                return _typed(self.expr(node.input), pl.String).str.contains(node.pattern, literal=True)
            case Substring():
                return _typed(self.expr(node.input), pl.String).str.slice(node.start, node.length)
            case Concat():
                if not node.args:
                    return pl.lit("", dtype=pl.String)
                args = [self.expr(arg) for arg in node.args]
                return pl.concat_str(args, separator=node.sep, ignore_nulls=True)
            case If():
                cond = _typed(self.expr(node.cond), pl.Boolean)
                return pl.when(cond).then(self.expr(node.then)).otherwise(self.expr(node.else_))
            case Coalesce():
                if not node.args:
                    return pl.lit(None)
                return pl.coalesce([self.expr(arg) for arg in node.args])
            case ParseDate():
                return _typed(self.expr(node.input), pl.String).str.to_date(node.format, strict=False)
            case Cast():
                return _cast(self.expr(node.input), node.to)
            case LookupRef():
                lookup = self.lookups.get(node.lookup_id)
                if lookup is None:
                    raise ExpressionError(f"unknown lookup id: {node.lookup_id}")
                return lookup_expr(lookup, _typed(self.expr(node.input), pl.String))
            case DimRef():
                table = self.dimensions.get(node.dim_id)
                if table is None:
                    raise ExpressionError(f"unknown dimension id: {node.dim_id}")
                return dim_expr(table, node.value, _typed(self.expr(node.input), pl.String))
            case FromUnix():
                epoch = _typed(self.expr(node.input), pl.Int64)
                # Naive datetimes are UTC, so the cast keeps the UTC calendar day.
                return pl.from_epoch(epoch, time_unit=node.unit).cast(pl.Date)
        raise ExpressionError(f"unknown expression kind: {node.kind}")


def _typed(expr: pl.Expr, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    # Only the Null dtype (a null literal) is converted; real type mismatches must still fail loudly.
    return expr.pipe_with_dtype(_null_to(dtype))


@cache
def _null_to(dtype: pl.DataType | type[pl.DataType]) -> Callable[[pl.Expr, pl.DataType], pl.Expr]:
    # One function object per dtype keeps identical subtrees equal, for the in-memory engine's common
    # subexpression elimination (``compile_columns`` shares them in the streaming engine).
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
