"""Column assertions of analytic tables (REFERENCE §1.8), checked on a mapping's output before it is written.

All checks of a mapping are computed in one aggregate query over its staged output, so they cost one
streaming pass over the needed columns, whatever the table's size. Messages keep Karet's wording, including
the Rust ``Option`` rendering of the range bounds, because users and scripts match on them.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from karet_defs.config.models import AnalyticTable


@dataclass(frozen=True)
class Violation:
    column: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"column `{self.column}` {self.kind}: {self.message}"


def _option(value: float | None) -> str:
    if value is None:
        return "None"
    return f"Some({value:.1f})" if value == int(value) else f"Some({value:g})"


@dataclass(frozen=True)
class RowCheck:
    """A check each row passes or fails on its own, so a failure can be traced to its raw file and line."""

    column: str
    check: str  # the key ``violations_from`` reads: not_null, accepted_values, below, above
    failing: pl.Expr  # true on a row that breaks the check
    expected: str  # what the column expects, as said of a failing value


def row_checks(produced: set[str], table: AnalyticTable) -> list[RowCheck]:
    """Every row-level assertion of the table over the columns ``produced`` (``unique`` is not one)."""
    checks: list[RowCheck] = []
    for column in table.schema_:
        rules = column.assertions
        if rules is None or column.name not in produced:
            continue
        value = pl.col(column.name)
        if rules.not_null:
            checks.append(RowCheck(column.name, "not_null", value.is_null(), "must have a value (not_null)"))
        if rules.accepted_values:
            allowed = pl.Series(rules.accepted_values, dtype=pl.String)
            outside = value.is_not_null() & value.cast(pl.String).is_in(allowed.implode()).not_()
            shown = ", ".join(rules.accepted_values[:10]) + (", …" if len(rules.accepted_values) > 10 else "")
            checks.append(RowCheck(column.name, "accepted_values", outside, f"must be one of [{shown}]"))
        number = value.cast(pl.Float64, strict=False)
        if rules.min is not None:
            checks.append(
                RowCheck(column.name, "below", number < rules.min, f"must be at least {rules.min:g}")
            )
        if rules.max is not None:
            checks.append(
                RowCheck(column.name, "above", number > rules.max, f"must be at most {rules.max:g}")
            )
    return checks


def assertion_aggregates(produced: set[str], table: AnalyticTable, *, unique: bool = True) -> list[pl.Expr]:
    """The aggregates ``violations_from`` reads, for one query over a frame with columns ``produced``
    (without the ``unique`` ones when ``unique`` is false: those are not tied to one file)."""
    aggregates = [c.failing.sum().alias(f"{c.column}\x00{c.check}") for c in row_checks(produced, table)]
    if unique:
        for column in table.schema_:
            if column.assertions is None or not column.assertions.unique or column.name not in produced:
                continue
            value = pl.col(column.name).drop_nulls()
            aggregates.append((value.len() - value.n_unique()).alias(f"{column.name}\x00unique"))
    return aggregates


def violations_from(
    counts: Mapping[str, int | None], produced: set[str], table: AnalyticTable
) -> list[Violation]:
    """The violations that the counts of ``assertion_aggregates`` show, in schema order."""
    violations: list[Violation] = []
    for column in table.schema_:
        rules = column.assertions
        if rules is None:
            continue
        if column.name not in produced:
            violations.append(
                Violation(column.name, "missing_column", "column not present in produced DataFrame")
            )
            continue

        def count(check: str, name: str = column.name) -> int:
            return int(counts.get(f"{name}\x00{check}") or 0)

        if nulls := count("not_null"):
            violations.append(Violation(column.name, "not_null", f"{nulls} null value(s) found"))
        if duplicates := count("unique"):
            violations.append(Violation(column.name, "unique", f"{duplicates} duplicate value(s)"))
        if outside := count("accepted_values"):
            allowed = len(rules.accepted_values or [])
            violations.append(
                Violation(
                    column.name,
                    "accepted_values",
                    f"{outside} value(s) not in accepted_values ({allowed} allowed)",
                )
            )
        below, above = count("below"), count("above")
        if below or above:
            bounds = f"(min={_option(rules.min)}, max={_option(rules.max)})"
            violations.append(
                Violation(column.name, "range", f"{below} below min, {above} above max {bounds}")
            )
    return violations
