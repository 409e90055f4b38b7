"""Column assertions of analytic tables (REFERENCE §1.8), checked on a mapping's output before it is written.

Messages keep Karet's wording, including the Rust ``Option`` rendering of the range bounds, because users and
scripts match on them.
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
    return f"Some({value:g})" if value != int(value) else f"Some({value:.1f})"


def check_assertions(frame: pl.DataFrame, table: AnalyticTable) -> list[Violation]:
    """Every violation of the table's column assertions by ``frame``, in schema order."""
    violations: list[Violation] = []
    for column in table.schema_:
        rules = column.assertions
        if rules is None:
            continue
        if column.name not in frame.columns:
            violations.append(
                Violation(column.name, "missing_column", "column not present in produced DataFrame")
            )
            continue
        series = frame.get_column(column.name)
        if rules.not_null and (nulls := series.null_count()):
            violations.append(Violation(column.name, "not_null", f"{nulls} null value(s) found"))
        if rules.unique:
            non_null = series.drop_nulls()
            duplicates = non_null.len() - non_null.n_unique()
            if duplicates:
                violations.append(Violation(column.name, "unique", f"{duplicates} duplicate value(s)"))
        if rules.accepted_values:
            allowed = pl.Series(rules.accepted_values, dtype=pl.String)
            outside = series.drop_nulls().cast(pl.String).is_in(allowed).not_().sum()
            if outside:
                violations.append(
                    Violation(
                        column.name,
                        "accepted_values",
                        f"{outside} value(s) not in accepted_values ({len(rules.accepted_values)} allowed)",
                    )
                )
        if rules.min is not None or rules.max is not None:
            values = series.cast(pl.Float64, strict=False).drop_nulls()
            below = int((values < rules.min).sum()) if rules.min is not None else 0
            above = int((values > rules.max).sum()) if rules.max is not None else 0
            if below or above:
                violations.append(
                    Violation(
                        column.name,
                        "range",
                        f"{below} below min, {above} above max "
                        f"(min={_option(rules.min)}, max={_option(rules.max)})",
                    )
                )
    return violations
