"""Column assertions of analytic tables (REFERENCE §1.8), checked on a mapping's output before it is written.

All checks of a mapping are computed in one aggregate query over its staged output, so they cost one
streaming pass over the needed columns, whatever the table's size. Messages keep Karet's wording, including
the Rust ``Option`` rendering of the range bounds, because users and scripts match on them.
"""

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


def assertion_aggregates(produced: set[str], table: AnalyticTable) -> list[pl.Expr]:
    """The aggregates ``violations_from`` reads, for one query over a frame with columns ``produced``."""
    aggregates: list[pl.Expr] = []
    for column in table.schema_:
        rules = column.assertions
        if rules is None or column.name not in produced:
            continue
        value = pl.col(column.name)
        if rules.not_null:
            aggregates.append(value.null_count().alias(f"{column.name}\x00not_null"))
        if rules.unique:
            aggregates.append(
                (value.drop_nulls().len() - value.drop_nulls().n_unique()).alias(f"{column.name}\x00unique")
            )
        if rules.accepted_values:
            allowed = pl.Series(rules.accepted_values, dtype=pl.String)
            outside = value.drop_nulls().cast(pl.String).is_in(allowed.implode()).not_().sum()
            aggregates.append(outside.alias(f"{column.name}\x00accepted_values"))
        if rules.min is not None or rules.max is not None:
            number = value.cast(pl.Float64, strict=False)
            below = (number < rules.min).sum() if rules.min is not None else pl.lit(0)
            above = (number > rules.max).sum() if rules.max is not None else pl.lit(0)
            aggregates += [below.alias(f"{column.name}\x00below"), above.alias(f"{column.name}\x00above")]
    return aggregates


def violations_from(counts: dict[str, object], produced: set[str], table: AnalyticTable) -> list[Violation]:
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
