"""Vectorised dimension matching (REFERENCE §9 "Dimensions"; Karet E4's ``dim_ref``).

A dimension maps an input string to one of its value columns. ``exact`` compares the whole (optionally
lower-cased) input with each row's keys, which must be unique; ``keyword_substring`` matches when any of a
row's patterns is a substring of the input, the highest ``priority`` winning and ties going to the earliest
row. A miss gives ``on_miss``: null, the input itself (``passthrough``) or ``{"literal": ...}``; a null input
always gives null. Matching is ``lookups.match_ranked``'s, so no Python code runs per row. The rows are held
as a frame (inline rows of the config, or the rows of lake CSV files read by ``engine.dimensions``), so a
dimension of a million rows is prepared with Polars, not a Python loop.
"""

from dataclasses import dataclass, field

import polars as pl

from karet_defs.config.models import Dimension, InlineRows, OnMissLiteral
from karet_defs.errors import ExpressionError
from karet_defs.expr.lookups import match_ranked

# Karet's cap: a reference table that quietly grows must fail loudly, not exhaust a worker's memory.
MAX_DIMENSION_ROWS = 1_000_000
PATTERNS = "__karet_patterns"
PRIORITY = "__karet_priority"
ORIGIN = "__karet_origin"  # the file a row was read from, named in error messages


@dataclass(eq=False)
class DimensionTable:
    """A dimension with its rows: ``PATTERNS`` (list of strings), ``PRIORITY`` (Int64), ``ORIGIN`` and one
    String column per value column, never null. ``error`` is set when the rows could not be had; every
    ``dim_ref`` to the dimension then fails with it."""

    dimension: Dimension
    rows: pl.DataFrame
    error: str | None = None
    _prepared: dict[str, tuple[pl.Series, pl.Series, pl.Series]] = field(default_factory=dict, repr=False)

    @classmethod
    def inline(cls, dimension: Dimension) -> "DimensionTable":
        """The rows written in the config (none for a file-backed dimension)."""
        columns = dimension.value_columns
        rows = dimension.rows.rows if isinstance(dimension.rows, InlineRows) else []
        frame = pl.DataFrame(
            {
                PATTERNS: [row.patterns for row in rows],
                PRIORITY: [row.priority for row in rows],
                ORIGIN: ["inline rows"] * len(rows),
                **{name: [row.values[j] for row in rows] for j, name in enumerate(columns)},
            },
            schema={
                PATTERNS: pl.List(pl.String),
                PRIORITY: pl.Int64,
                ORIGIN: pl.String,
                **dict.fromkeys(columns, pl.String),
            },
        )
        return cls(dimension, frame, rows_error(dimension, frame))

    def prepared(self, column: str) -> tuple[pl.Series, pl.Series, pl.Series]:
        """``match_ranked``'s patterns, ranks and outputs for one value column, computed once."""
        if column not in self._prepared:
            ordered = self.rows.with_row_index("__index").sort(
                [PRIORITY, "__index"], descending=[True, False], maintain_order=True
            )
            pairs = (
                ordered.select(PATTERNS, pl.int_range(pl.len(), dtype=pl.UInt32).alias("__rank"))
                .explode(PATTERNS)
                .drop_nulls(PATTERNS)
                .with_columns(_folded(pl.col(PATTERNS), self.dimension))
                # Ranks ascend, so the first row that lists a pattern is its best row.
                .unique(PATTERNS, keep="first", maintain_order=True)
            )
            self._prepared[column] = (pairs[PATTERNS], pairs["__rank"], ordered[column])
        return self._prepared[column]


def rows_error(dimension: Dimension, rows: pl.DataFrame) -> str | None:
    """Karet's message for rows a dimension cannot use: over the row cap, or a repeated key of an exact
    dimension (naming the files that hold it); None when the rows are fine."""
    if rows.height > MAX_DIMENSION_ROWS:
        origins = rows.get_column(ORIGIN).unique(maintain_order=True)
        where = (
            origins[0]
            if origins.len() == 1
            else f"{origins.len()} files under {origins[0].rsplit('/', 1)[0]}/"
        )
        # Files are read only up to the cap, so the count past it is not known.
        return f"dimension `{dimension.id}` exceeds the {MAX_DIMENSION_ROWS}-row cap (in {where})"
    if dimension.match != "exact":
        return None
    keys = rows.select(PATTERNS, ORIGIN).explode(PATTERNS).drop_nulls(PATTERNS)
    keys = keys.with_columns(_folded(pl.col(PATTERNS), dimension))
    repeated = keys.filter(pl.col(PATTERNS).is_duplicated())
    if repeated.is_empty():
        return None
    key = repeated.item(0, PATTERNS)
    origins = repeated.filter(pl.col(PATTERNS) == key).get_column(ORIGIN).unique(maintain_order=True)
    return f"dimension `{dimension.id}` has duplicate key `{key}` (in {' and '.join(origins)})"


def dim_expr(table: DimensionTable, value: str | None, input: pl.Expr) -> pl.Expr:
    """Match the String expression ``input`` against the dimension; the result is the String ``value``
    column of the matching row (default the first value column), or ``on_miss``."""
    dimension = table.dimension
    if table.error is not None:
        raise ExpressionError(table.error)
    column = value if value is not None else next(iter(dimension.value_columns), None)
    if column is None or column not in dimension.value_columns:
        raise ExpressionError(f"dimension `{dimension.id}` has no value column `{column}`")
    patterns, ranks, outputs = table.prepared(column)
    hit = match_ranked(
        input,
        patterns,
        ranks,
        outputs,
        exact=dimension.match == "exact",
        case_insensitive=dimension.case_insensitive,
    )
    # Values are never null, so a null hit is a miss; a null input stays null whatever ``on_miss`` says.
    if dimension.on_miss == "passthrough":
        return pl.coalesce(hit, input)
    if isinstance(dimension.on_miss, OnMissLiteral):
        return pl.coalesce(
            hit, pl.when(input.is_not_null()).then(pl.lit(dimension.on_miss.literal, dtype=pl.String))
        )
    return hit


def _folded(patterns: pl.Expr, dimension: Dimension) -> pl.Expr:
    return patterns.str.to_lowercase() if dimension.case_insensitive else patterns
