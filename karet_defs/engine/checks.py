"""Row checks of a mapping's output (its table's assertions, then its partition keys), and the quarantine of
raw files whose rows fail them.

The checks run as one aggregate query, alone or beside the query that writes the output, and the same
checks per raw file, so a file whose rows fail is held back alone and reported row by row: the line, the
column, the value as written in the raw file, and what the column expects. ``unique`` is checked over every
row the mapping will hold once the batches are written.
"""

from collections.abc import Mapping as MappingOf
from pathlib import Path

import polars as pl

from karet_defs.config.models import AnalyticTable, Col, Mapping, ParseDate, SourceContainer
from karet_defs.config.walk import iter_nodes
from karet_defs.engine import delta
from karet_defs.engine.assertions import (
    RowCheck,
    Violation,
    assertion_aggregates,
    row_checks,
    violations_from,
)
from karet_defs.engine.evaluation import Evaluation
from karet_defs.engine.read import raw_csv_values, read_source_file
from karet_defs.engine.report import FileError
from karet_defs.engine.write import PartitionError, check_partition_keys, partition_null_counts

QUARANTINE_EXAMPLES = 5  # rows shown per quarantined file; the error gives the count of the rest
ROWS, ROWS_FAILING = "__karet_rows", "__karet_rows_failing"
_LINE = "__karet_line"
_UNIQUE_SUFFIX = "\x00unique"


class MappingFailed(Exception):
    """The mapping changes nothing this run; the message is user-facing."""

    def __init__(self, message: str, violations: list[Violation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


class RowChecks:
    """Row-level checks of a mapping's output (assertions, then partition keys) as one aggregate query,
    which can run alone or beside the query that writes the output; and the same checks per raw file, so a
    file whose rows fail is held back alone."""

    def __init__(self, schema: pl.Schema, mapping: Mapping, table: AnalyticTable) -> None:
        self.schema, self.mapping, self.table = schema, mapping, table
        self._produced = set(schema.names()) - set(delta.HIDDEN_COLUMNS)
        self._aggregates = [
            *assertion_aggregates(self._produced, table),
            *partition_null_counts(schema, table),
        ]
        partition_keys = [key for key in table.partition_keys if key in schema]
        self._row_checks = [
            *row_checks(self._produced, table),
            *(
                RowCheck(
                    k,
                    "nulls",
                    pl.col(k).is_null(),
                    "must have a value (a partition key: coalesce it to a default)",
                )
                for k in partition_keys
            ),
        ]

    def query(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """One row: every check's count over ``frame``, and ``ROWS``."""
        return frame.select(*self._aggregates, pl.len().alias(ROWS))

    def failing_files(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Per raw file with failing rows: its per-check counts and ``ROWS_FAILING``."""
        if not self._row_checks:
            return frame.select(pl.col(delta.SOURCE_COLUMN), pl.lit(0).alias(ROWS_FAILING)).head(0)
        counts = [c.failing.sum().alias(f"{c.column}\x00{c.check}") for c in self._row_checks]
        any_failing = self._any_failing().sum().alias(ROWS_FAILING)
        per_file = frame.group_by(delta.SOURCE_COLUMN).agg(*counts, any_failing, pl.len().alias(ROWS))
        return per_file.filter(pl.col(ROWS_FAILING) > 0)

    def failing_rows(self, frame: pl.LazyFrame, limit: int) -> pl.DataFrame:
        """The first ``limit`` failing rows of ``frame``, flagged with the checks they fail."""
        flags = [
            c.failing.fill_null(False).alias(f"__karet_fails_{i}") for i, c in enumerate(self._row_checks)
        ]
        return frame.filter(self._any_failing()).with_columns(flags).head(limit).collect(engine="streaming")

    def failed_by(self, row: MappingOf[str, object]) -> list[RowCheck]:
        """The checks a row of ``failing_rows`` fails."""
        return [c for i, c in enumerate(self._row_checks) if row.get(f"__karet_fails_{i}")]

    def _any_failing(self) -> pl.Expr:
        return pl.any_horizontal([c.failing.fill_null(False) for c in self._row_checks])

    def verdict(self, counts: MappingOf[str, int | None], *, unique: bool = True) -> None:
        """Raise ``MappingFailed`` for the first failing check, given the row of ``query``'s result (its
        ``unique`` counts left out unless ``unique``)."""
        if not unique:
            counts = {k: v for k, v in counts.items() if not k.endswith(_UNIQUE_SUFFIX)}
        violations = violations_from(counts, self._produced, self.table)
        if violations:
            raise MappingFailed(
                f"assertion {self.mapping.id}: " + "; ".join(str(v) for v in violations), violations
            )
        try:
            check_partition_keys(self.schema, counts, self.table)
        except PartitionError as exc:
            raise MappingFailed(f"partition {self.mapping.id}: {exc}") from exc


def has_unique(table: AnalyticTable) -> bool:
    """Whether a column of ``table`` asserts ``unique``."""
    return any(c.assertions is not None and c.assertions.unique for c in table.schema_)


def check_unique_across(
    kept: pl.LazyFrame | None, written: pl.LazyFrame, mapping: Mapping, table: AnalyticTable
) -> None:
    """Raise ``MappingFailed`` when a ``unique`` column repeats a value across the rows the table keeps of
    the mapping and the rows written this run."""
    names = [c.name for c in table.schema_ if c.assertions is not None and c.assertions.unique]
    parts = [written] if kept is None else [kept, written]
    present = [n for n in names if n in written.collect_schema()]
    union = pl.concat([p.select(present) for p in parts], how="vertical_relaxed")
    checks = RowChecks(union.collect_schema(), mapping, table)
    counts = checks.query(union).collect(engine="streaming").row(0, named=True)
    checks.verdict({k: v for k, v in counts.items() if k.endswith(_UNIQUE_SUFFIX)})


def quarantine_rows(
    key: str, path: Path, source: SourceContainer, evaluation: Evaluation, checks: RowChecks
) -> list[FileError]:
    """The first failing rows of one raw file, read again alone (so lines are the file's own)."""
    lines = read_source_file(path, source).with_row_index(_LINE, offset=2)
    found = checks.failing_rows(evaluation.apply(lines, keep=(_LINE,)), QUARANTINE_EXAMPLES)
    wanted = found.get_column(_LINE).to_list()
    raw = raw_csv_values(path, wanted) if source.format == "csv" else {}
    errors: list[FileError] = []
    for row in found.iter_rows(named=True):
        for check in checks.failed_by(row):
            read_from, date_format = _raw_origin(checks.mapping, check.column)
            value = raw.get(row[_LINE], {}).get(read_from) if read_from else None
            if value is None and row.get(check.column) is not None:
                value = str(row[check.column])
            message = check.expected
            if check.check in ("not_null", "nulls") and value:
                # A value was there and became null on the way: say what it had to look like.
                message = f"does not match {date_format}" if date_format else "did not convert"
                message += f"; {check.column} {check.expected}"
            errors.append(FileError(key, row[_LINE], check.column, value, message))
    return errors


def quarantine_message(key: str, examples: list[FileError], failing: int) -> str:
    """The run's error for a held-back raw file: its first failing row, and how many more fail."""
    first = examples[0] if examples else None
    if first is None:
        detail = f"{failing} row(s) fail a check"
    else:
        shown = "(empty)" if first.value is None else f'"{first.value}"'
        detail = f"line {first.line}: {first.column} {shown} {first.message}"
        if failing > 1:
            detail += f" (and {failing - 1} more row(s))"
    return f"file {key} {detail}; the file is held back until it is fixed"


def _raw_origin(mapping: Mapping, column: str) -> tuple[str | None, str | None]:
    """The one source column a table column is computed from (its raw text is what a person should see),
    and the date format it is parsed with, if any."""
    for out in mapping.columns:
        if out.name != column:
            continue
        nodes = list(iter_nodes(out.expr))
        sources = {node.name for node in nodes if isinstance(node, Col)}
        formats = [node.format for node in nodes if isinstance(node, ParseDate)]
        return (sources.pop() if len(sources) == 1 else None), (formats[0] if formats else None)
    return None, None
