"""Rollups (REFERENCE §9): an analytic table grouped and aggregated into another, partition by partition.

A rollup's table has no other writer. Each of its commits records the rollup's signature and the version
of the source table it was computed from (``karet.rollup``). The next run compares the source's data files
at that version with its files now: the partitions of the files added or removed since are the changed
source partitions, and their values on the target's partition keys (a subset of the source's, so a target
partition is a union of whole source partitions) are the target partitions to recompute, each from every
source row it covers. Whatever makes that difference unknown (nothing recorded, another signature, a clean
run, an expired source version, an unpartitioned target, a new output schema) recomputes the whole table.

Aggregates follow Karet's worker: ``count`` counts rows (with a ``where``: rows where it is true), ``sum``,
``min``, ``max`` and ``median`` skip nulls, ``avg`` is stored as ``<name>_sum`` and ``<name>_count`` (of
non-null values) so a coarser rollup can be built from a finer one, and ``count_distinct`` counts distinct
non-null values, as SQL's ``COUNT(DISTINCT ...)`` does. A ``where`` selects the rows of one aggregate only.
"""

import hashlib
import json
import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from karet_defs.config.models import AnalyticTable, LookupMapping, Pipeline, Rollup, RollupAggregate
from karet_defs.config.walk import dimension_ids
from karet_defs.engine import delta
from karet_defs.engine.assertions import Violation, assertion_aggregates, violations_from
from karet_defs.engine.publishing import TableTarget, publish
from karet_defs.engine.read import declared_dtype
from karet_defs.engine.report import RunReport, TableReport
from karet_defs.engine.tables import parse_partition_value, partition_dtype
from karet_defs.engine.write import render_segment
from karet_defs.errors import ExpressionError
from karet_defs.expr.compile import Dimensions, compile_expr
from karet_defs.store.base import ObjectStore, TableLocation

META_ROLLUP = "karet.rollup"
# Bumped whenever the engine would aggregate the same rows differently, so rollups are recomputed.
ROLLUP_FORMAT = 1

PartitionValues = tuple[str | None, ...]


@dataclass(frozen=True)
class RollupContext:
    """What every rollup of a run shares: where it writes, its log and the expression registries."""

    warehouse: ObjectStore
    slug: str
    pipeline: Pipeline
    scratch: Path
    log: logging.Logger
    lookups: Mapping[str, LookupMapping]
    dimensions: Dimensions
    fingerprints: Mapping[str, str]  # dimension id -> fingerprint of its definition and files


class _RollupFailed(Exception):
    def __init__(self, message: str, violations: list[Violation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


def run_rollups(ctx: RollupContext, report: RunReport, *, clean_run: bool, info: Mapping[str, str]) -> None:
    """Recompute the rollups whose tables ``report`` covers, sources first, each with one commit.

    A rollup that fails is reported as ``rollup <id>: …`` and changes nothing; the others still run."""
    for rollup in rollup_order(ctx.pipeline.rollups):
        table_report = report.tables.get(rollup.analytic_table_id)
        source = ctx.pipeline.table(rollup.source_table_id)
        target = ctx.pipeline.table(rollup.analytic_table_id)
        if table_report is None or source is None or target is None:
            continue
        try:
            _RollupRun(ctx, rollup, source, target).execute(table_report, report, clean_run, info)
        except (_RollupFailed, ExpressionError, pl.exceptions.PolarsError) as exc:
            message = (
                str(exc) if isinstance(exc, _RollupFailed) else f"rollup {rollup.id}: {_first_line(exc)}"
            )
            report.add_error(message)
            table_report.mappings_failed.append(rollup.id)
            table_report.violations.extend(getattr(exc, "violations", []))


def rollup_order(rollups: list[Rollup]) -> list[Rollup]:
    """Rollups with every rollup writing their source table before them (validation refuses cycles)."""
    targets = {r.analytic_table_id for r in rollups}
    done: set[str] = set()
    ordered: list[Rollup] = []
    pending = list(rollups)
    while pending:
        ready = [r for r in pending if r.source_table_id not in targets or r.source_table_id in done]
        if not ready:  # a cycle: unreachable for a validated config, kept finite anyway
            ready = pending
        for rollup in ready:
            ordered.append(rollup)
            done.add(rollup.analytic_table_id)
        pending = [r for r in pending if r not in ready]
    return ordered


def aggregate_exprs(
    rollup: Rollup, lookups: Mapping[str, LookupMapping], dimensions: Dimensions
) -> list[pl.Expr]:
    """The aggregations of one group, named as the target's columns."""
    exprs: list[pl.Expr] = []
    for aggregate in rollup.aggregates:
        cond = None
        if aggregate.where is not None:
            cond = compile_expr(aggregate.where, lookups, dimensions).cast(pl.Boolean)
        exprs += _aggregate(aggregate, cond)
    return exprs


def _aggregate(aggregate: RollupAggregate, cond: pl.Expr | None) -> list[pl.Expr]:
    name = aggregate.name
    if aggregate.fn == "count":
        # A filtered `len` is not an aggregation, so a conditional count sums the predicate instead.
        counted = pl.len() if cond is None else cond.cast(pl.Int64).sum()
        return [counted.cast(pl.Int64).alias(name)]
    if aggregate.column is None:
        raise ExpressionError(f"aggregate `{name}` needs a column")
    value = pl.col(aggregate.column)
    if cond is not None:
        value = value.filter(cond)
    if aggregate.fn == "avg":
        return [value.sum().alias(f"{name}_sum"), value.count().cast(pl.Int64).alias(f"{name}_count")]
    if aggregate.fn == "count_distinct":
        return [value.drop_nulls().n_unique().cast(pl.Int64).alias(name)]
    functions = {"sum": pl.Expr.sum, "min": pl.Expr.min, "max": pl.Expr.max, "median": pl.Expr.median}
    if aggregate.fn not in functions:
        raise ExpressionError(f"aggregate `{name}`: unknown fn `{aggregate.fn}`")
    return [functions[aggregate.fn](value).alias(name)]


def rollup_frame(
    rows: pl.LazyFrame,
    rollup: Rollup,
    target: AnalyticTable,
    lookups: Mapping[str, LookupMapping],
    dimensions: Dimensions,
) -> pl.LazyFrame:
    """``rows`` of the source grouped and aggregated, cast to the target's declared types, in a stable
    order: the target's schema order, then any column it does not declare."""
    grouped = rows.group_by(rollup.group_by).agg(aggregate_exprs(rollup, lookups, dimensions))
    produced = grouped.collect_schema().names()
    declared = [c.name for c in target.schema_ if c.name in produced]
    order = declared + [name for name in produced if name not in declared]
    casts = [
        pl.col(c.name).cast(declared_dtype(c), strict=False) if c.type != "date" else pl.col(c.name)
        for c in target.schema_
        if c.name in produced
    ]
    return grouped.with_columns(casts).select(order).sort(rollup.group_by, nulls_last=True)


class _RollupRun:
    def __init__(
        self, ctx: RollupContext, rollup: Rollup, source: AnalyticTable, target: AnalyticTable
    ) -> None:
        self.ctx, self.rollup, self.source, self.target = ctx, rollup, source, target
        self.table_target = TableTarget.of(ctx.warehouse, ctx.slug, target, ctx.scratch / "rollups")
        self.partition_keys = self.table_target.partition_keys
        self.source_location = delta.location(ctx.warehouse, ctx.slug, source.id)

    def execute(
        self, table_report: TableReport, report: RunReport, clean_run: bool, info: Mapping[str, str]
    ) -> None:
        source_table = delta.open_table(self.source_location)
        if source_table is None:
            self.ctx.log.info("rollup %s: source table %s has no data yet", self.rollup.id, self.source.id)
            return
        current = delta.open_table(self.table_target.location)
        signature = self._signature()
        source_version = source_table.version()
        expected = self._expected_schema(source_table)
        affected: set[PartitionValues] | None = None  # None: every partition
        previous = None if current is None or clean_run else _recorded(self.table_target.location, current)
        if (
            current is not None
            and previous is not None
            and previous.get("signature") == signature
            and delta.same_schema(current, expected)
        ):
            if previous.get("source_version") == source_version:
                self.ctx.log.info("rollup %s: source unchanged, no commit", self.rollup.id)
                return
            affected = self._changed_partitions(int(previous.get("source_version", -1)), source_table)
        frame = self._compute(source_table, affected)
        self._check(frame)
        change = delta.Commit(replace_all=affected is None or current is None)
        change.added = self._write(frame)
        if current is not None and affected is not None:  # not replacing all
            active = delta.active_files(current)
            change.removed = [row for row in active.to_dicts() if self._partition_of(row) in affected]
        if change.replace_all and current is None and not change.added:
            return  # nothing to create a table from
        metadata = {
            **info,
            META_ROLLUP: json.dumps({"signature": signature, "source_version": source_version}),
        }
        version = publish(self.table_target, current, change, expected, metadata, report)
        table_report.mappings_written.append(self.rollup.id)
        table_report.columns.update({name: str(dtype) for name, dtype in frame.schema.items()})
        self.ctx.log.info(
            "rollup %s: version %d of %s, %d row(s) added, %d row(s) removed",
            self.rollup.id,
            version,
            self.target.id,
            change.rows_added,
            change.rows_removed,
        )

    def _signature(self) -> str:
        wheres = [a.where for a in self.rollup.aggregates]
        definition = json.dumps(
            [
                ROLLUP_FORMAT,
                self.rollup.model_dump(mode="json"),
                self.source.model_dump(mode="json", by_alias=True),
                self.target.model_dump(mode="json", by_alias=True),
                [lookup.model_dump(mode="json") for lookup in self.ctx.pipeline.lookup_mappings],
                [self.ctx.fingerprints.get(d) for d in dimension_ids(*wheres)],
            ],
            sort_keys=True,
        )
        return hashlib.sha256(definition.encode()).hexdigest()[:32]

    def _source_schema(self, source_table: DeltaTable) -> dict[str, pl.DataType]:
        """The source's columns as its rows are read: partition columns typed by the declared schema."""
        schema = pa.schema(source_table.schema().to_arrow())
        empty = pl.from_arrow(schema.empty_table())
        assert isinstance(empty, pl.DataFrame)
        columns = dict(empty.schema)
        for key in source_table.metadata().partition_columns:
            columns[key] = partition_dtype(self.source, key)
        return {k: v for k, v in columns.items() if k not in delta.HIDDEN_COLUMNS}

    def _expected_schema(self, source_table: DeltaTable) -> pa.Schema:
        empty = pl.LazyFrame(schema=self._source_schema(source_table))
        ctx = self.ctx
        columns = dict(
            rollup_frame(empty, self.rollup, self.target, ctx.lookups, ctx.dimensions).collect_schema()
        )
        for key in self.partition_keys:
            columns[key] = columns.pop(key, pl.String())
        columns[delta.SOURCE_COLUMN] = pl.String()
        columns[delta.MAPPING_COLUMN] = pl.String()
        return pl.DataFrame(schema=columns).to_arrow().schema

    def _changed_partitions(self, since: int, source_table: DeltaTable) -> set[PartitionValues] | None:
        """Target partitions over the source files added or removed since version ``since``; None when that
        cannot be known (an unpartitioned target, an expired version)."""
        if not self.partition_keys or since < 0:
            return None
        try:
            before = delta.open_table(self.source_location, since)
        except delta.TableVersionNotFound:
            return None
        if before is None:
            return None
        old = {str(row["path"]): row for row in delta.active_files(before).to_dicts()}
        new = {str(row["path"]): row for row in delta.active_files(source_table).to_dicts()}
        changed = [old[p] for p in old.keys() - new.keys()] + [new[p] for p in new.keys() - old.keys()]
        return {self._partition_of(row) for row in changed}

    def _partition_of(self, row: Mapping[str, object]) -> PartitionValues:
        return tuple(delta.partition_values_of(row, self.partition_keys).values())

    def _compute(self, source_table: DeltaTable, affected: set[PartitionValues] | None) -> pl.DataFrame:
        files = delta.active_files(source_table).to_dicts()
        if affected is not None:
            files = [f for f in files if self._partition_of(f) in affected]
        schema = self._source_schema(source_table)
        partition_columns = source_table.metadata().partition_columns
        options = self.source_location.reader_options()
        scans = []
        for file in files:
            uri = f"{self.source_location.uri}/{urllib.parse.unquote(str(file['path']))}"
            values = delta.partition_values_of(file, partition_columns)
            restored = [
                pl.lit(parse_partition_value(values[k], schema[k]), dtype=schema[k]).alias(k)
                for k in partition_columns
            ]
            scans.append(pl.scan_parquet(uri, storage_options=options).with_columns(restored))
        empty = pl.LazyFrame(schema=schema)
        # Files written before a schema change lack the newer columns: they read as nulls.
        rows = pl.concat([empty, *scans], how="diagonal_relaxed") if scans else empty
        ctx = self.ctx
        return rollup_frame(rows, self.rollup, self.target, ctx.lookups, ctx.dimensions).collect(
            engine="streaming"
        )

    def _check(self, frame: pl.DataFrame) -> None:
        produced = set(frame.columns)
        aggregates = assertion_aggregates(produced, self.target)
        counts = frame.select(aggregates).row(0, named=True) if aggregates and frame.height else {}
        violations = violations_from(counts, produced, self.target)
        if violations:
            raise _RollupFailed(
                f"assertion {self.rollup.id}: " + "; ".join(str(v) for v in violations), violations
            )

    def _write(self, frame: pl.DataFrame) -> list[delta.DataFile]:
        frame = frame.with_columns(
            pl.lit(self.source.id, dtype=pl.String).alias(delta.SOURCE_COLUMN),
            pl.lit(self.rollup.id, dtype=pl.String).alias(delta.MAPPING_COLUMN),
        )
        groups = (
            frame.partition_by(self.partition_keys, as_dict=True, include_key=False)
            if self.partition_keys
            else {(): frame}
        )
        written: list[delta.DataFile] = []
        for values, part in groups.items():
            if part.is_empty():
                continue
            segments = [f"{k}={render_segment(v)}" for k, v in zip(self.partition_keys, values, strict=True)]
            name = delta.data_file_name(self.rollup.id, self.source.id)
            relative = "/".join([*segments, name])
            path = self.table_target.staging_root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(path, compression="zstd", statistics=True)
            partition_values: dict[str, str | None] = {
                k: delta.partition_string(v) for k, v in zip(self.partition_keys, values, strict=True)
            }
            written.append(
                delta.describe_file(path, relative, partition_values, self.rollup.id, self.source.id)
            )
        return written


class _Recorded(TypedDict, total=False):
    """What a rollup's commit records under ``META_ROLLUP``."""

    signature: str
    source_version: int


def _recorded(where: TableLocation, current: DeltaTable) -> _Recorded | None:
    info = delta.commit_info(where, current.version())
    raw = (info or {}).get(META_ROLLUP)
    if raw is None:
        return None
    return cast(_Recorded, json.loads(raw) if isinstance(raw, str) else raw)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
