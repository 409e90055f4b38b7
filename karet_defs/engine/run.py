"""Running a whole pipeline (SPEC §4, REFERENCE §3.3): the one entry point Dagster assets and scripts call.

Each analytic table is a Delta table (``engine.delta``) and a run makes at most one commit per table. The
last commit records what the table holds per mapping (the mapping's signature and each raw file's ETag), so
a run evaluates only new or changed raw files, removes the rows of changed and removed ones, and commits
both at once; a mapping whose definition changed is evaluated again over all its files. Files are
evaluated in batches of at most ``BATCH_FILES`` files / ``BATCH_BYTES`` (a query's fixed cost dwarfs a
small file; the bound keeps memory flat), each batch writing one Parquet file per (raw file, partition)
straight under the table root, so a later change of one raw file touches only its own data files. A batch
that fails is redone file by file, so a bad file is reported by name and the good ones are still written.
"""

import hashlib
import json
import logging
import urllib.parse
from collections.abc import Collection, Mapping as MappingOf
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from polars.io.partition import FileProviderArgs

from karet_defs.catalog import read_pipeline
from karet_defs.config.models import AnalyticTable, Col, Mapping, ParseDate, Pipeline, SourceContainer
from karet_defs.config.walk import dimension_ids, iter_nodes, mapping_roots
from karet_defs.engine import delta
from karet_defs.engine.assertions import (
    RowCheck,
    Violation,
    assertion_aggregates,
    row_checks,
    violations_from,
)
from karet_defs.engine.dimensions import LoadedDimensions, load_dimensions
from karet_defs.engine.progress import ProgressTracker
from karet_defs.engine.read import (
    SOURCE_EXTENSIONS,
    FileReadError,
    csv_header,
    declared_dtype,
    describe_read_error,
    raw_csv_values,
    read_source_file,
    scan_csv_files,
)
from karet_defs.engine.rollups import RollupContext, run_rollups
from karet_defs.engine.write import (
    PartitionError,
    check_partition_keys,
    partition_null_counts,
    render_segment,
)
from karet_defs.errors import KaretError
from karet_defs.expr.compile import CompiledColumns, compile_columns, compile_expr
from karet_defs.expr.lookups import build_lookup_registry
from karet_defs.scratch import reap_orphans, scratch_dir
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, ObjectStore, Stores, TableLocation

_log = logging.getLogger("karet.engine")
# Bumped whenever the engine would evaluate the same file differently, so tables are re-evaluated.
ENGINE_FORMAT = 3
BATCH_FILES = 64
BATCH_BYTES = 64 * 2**20
_FILE_KEY = "__karet_file"  # a copy of the source column, consumed by the partitioned sink
_NULL_SEGMENT = "__null__"
_UPLOAD_THREADS = 8
QUARANTINE_EXAMPLES = 5  # rows shown per quarantined file; the error gives the count of the rest
_LINE = "__karet_line"
_ROWS, _ROWS_FAILING = "__karet_rows", "__karet_rows_failing"


@dataclass
class TableReport:
    """What one run did to one analytic table."""

    table_id: str
    partitions: list[str] = field(default_factory=list)
    rows_written: int = 0
    rows_removed: int = 0
    rows_deduped: int = 0
    mappings_written: list[str] = field(default_factory=list)
    mappings_failed: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # raw files held back for failing rows
    columns: dict[str, str] = field(default_factory=dict)
    version: int | None = None  # the Delta version this run committed, None when it committed nothing


@dataclass(frozen=True)
class FileError:
    """One row of a quarantined raw file: where it is, what it holds, what the column expects."""

    file: str
    line: int  # the line of the raw file (the header is line 1)
    column: str
    value: str | None
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "value": self.value,
            "message": self.message,
        }


@dataclass
class RunReport:
    """The worker's answer: ``partitions_written``, ``files_processed``, ``errors``, plus per-table facts."""

    partitions_written: int = 0
    files_processed: int = 0
    files_parsed: int = 0
    errors: list[str] = field(default_factory=list)
    file_errors: list[FileError] = field(default_factory=list)
    tables: dict[str, TableReport] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {
            "partitions_written": self.partitions_written,
            "files_processed": self.files_processed,
            "errors": list(self.errors),
        }

    def add_error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)


def run_pipeline(
    stores: Stores,
    slug: str,
    *,
    clean_run: bool = False,
    table_ids: Collection[str] | None = None,
    log: logging.Logger | None = None,
    commit_info: MappingOf[str, str] | None = None,
    progress: ProgressTracker | None = None,
) -> RunReport:
    """Run every mapping of a pipeline (or only those feeding ``table_ids``) and commit its tables.

    ``commit_info`` (Dagster run id, trigger, config ETag) is recorded in each commit; ``progress`` is
    updated as the run goes (its caller reports its end).
    """
    log = log or _log
    progress = progress or ProgressTracker()
    pipeline = read_pipeline(stores, slug)
    tables = [t for t in pipeline.analytic_tables if table_ids is None or t.id in table_ids]
    report = RunReport(tables={t.id: TableReport(t.id) for t in tables})
    mappings = [m for m in pipeline.mappings if m.analytic_table_id in report.tables]
    reap_orphans()  # scratch of runs killed on this host: downloaded inputs, staged files
    info = {
        delta.META_OPERATION: "clean_run" if clean_run else "run",
        **(commit_info or {}),
    }
    with scratch_dir("run") as tmp:
        progress.phase("listing")
        inputs = RawInputs(
            stores.lake, Path(tmp) / "inputs", _list_inputs(stores.lake, pipeline, slug, mappings)
        )
        if not inputs.infos:
            log.info("no input files found for pipeline %s", slug)
        lookups = build_lookup_registry(pipeline.lookup_mappings)
        dimensions = load_dimensions(stores.lake, pipeline, slug, Path(tmp) / "dimensions")
        rollup_tables = {r.analytic_table_id for r in pipeline.rollups}
        for table in tables:
            if table.id in rollup_tables:
                continue  # written by its rollup, below, once its source table is committed
            run = _TableRun(
                stores.warehouse,
                slug,
                pipeline,
                table,
                inputs,
                lookups,
                dimensions,
                report,
                log,
                Path(tmp),
                progress,
            )
            run.execute(clean_run=clean_run, info=info)
        context = RollupContext(
            stores.warehouse,
            slug,
            pipeline,
            Path(tmp),
            log,
            lookups,
            dimensions.tables,
            dimensions.fingerprints,
        )
        run_rollups(context, report, clean_run=clean_run, info=info)
        report.files_processed = len(inputs.infos) - len(inputs.failed)
        report.files_parsed = inputs.parsed
        for key, reason in inputs.failed.items():
            report.add_error(f"file {key}: download failed: {reason}")
    log.info("%d input file(s), %d parsed in this run", report.files_processed, inputs.parsed)
    return report


def _list_inputs(
    lake: ObjectStore, pipeline: Pipeline, slug: str, mappings: list[Mapping]
) -> list[ObjectInfo]:
    """Every raw file of the sources the mappings read, de-duplicated across sources, in listing order."""
    wanted = {m.source_container_id for m in mappings}
    seen: dict[str, ObjectInfo] = {}
    for source in pipeline.source_containers:
        if source.id not in wanted:
            continue
        extensions = SOURCE_EXTENSIONS[source.format]
        for info in lake.list(source.resolved_prefix(slug)):
            if info.key not in seen and info.key.lower().endswith(extensions):
                seen[info.key] = info
    return list(seen.values())


class RawInputs:
    """Raw files fetched on first need and at most once per run (local files are read in place)."""

    def __init__(self, lake: ObjectStore, folder: Path, infos: list[ObjectInfo]) -> None:
        self.lake = lake
        self.folder = folder
        self.infos = {info.key: info for info in infos}
        self.failed: dict[str, str] = {}
        self.parsed = 0
        self._paths: dict[str, Path] = {}

    def path(self, key: str) -> Path | None:
        """A local path of the file, or None when it cannot be fetched (recorded in ``failed``)."""
        if key in self._paths:
            return self._paths[key]
        if key in self.failed:
            return None
        path = self.lake.local_path(key)
        if path is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{len(self._paths)}{Path(key).suffix}"
            try:
                self.lake.download(key, path)
            except KaretError as exc:
                self.failed[key] = exc.message
                return None
        self._paths[key] = path
        return path


def mapping_signature(
    pipeline: Pipeline,
    mapping: Mapping,
    table: AnalyticTable,
    dimensions: MappingOf[str, str] | None = None,
) -> str:
    """Changes whenever the mapping's rows could change for the same raw files: its definition, its
    source's, the lookups', the dimensions' it uses (``dimensions``: their fingerprints, files included),
    the table's (schema, keys, assertions) and the engine's own format."""
    source = pipeline.source(mapping.source_container_id)
    parts: list[object] = [
        ENGINE_FORMAT,
        mapping.model_dump(mode="json", by_alias=True),
        source.model_dump(mode="json", by_alias=True) if source else None,
        [lookup.model_dump(mode="json") for lookup in pipeline.lookup_mappings],
        table.model_dump(mode="json", by_alias=True),
    ]
    used = dimension_ids(*mapping_roots(mapping), source.record_filter if source else None)
    if used:  # appended only when used, so the signatures of configs without dimensions stay as they were
        parts.append([(d, (dimensions or {}).get(d)) for d in used])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class _MappingFailed(Exception):
    def __init__(self, message: str, violations: list[Violation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


@dataclass(frozen=True)
class _Evaluation:
    """A mapping's compiled expressions, applied the same way to one file or to a batch of files."""

    columns: CompiledColumns
    where: pl.Expr | None
    record_filter: pl.Expr | None

    def apply(self, frame: pl.LazyFrame, *, keep: tuple[str, ...] = ()) -> pl.LazyFrame:
        if self.record_filter is not None:
            frame = frame.filter(self.record_filter)
        frame = self.columns.select(frame, keep=keep)
        return frame.filter(self.where) if self.where is not None else frame


@dataclass
class _MappingPlan:
    """One mapping's share of a table run: which raw files to evaluate and which rows to drop."""

    mapping: Mapping
    source: SourceContainer
    signature: str
    files: list[ObjectInfo]  # every current raw file of the mapping's source
    to_process: list[ObjectInfo]
    gone: set[str]  # raw files whose rows leave the table (changed or removed)
    full: bool  # every row of the mapping is replaced
    previous: delta.MappingState | None


class _TableRun:
    """One table's run: plan per mapping, evaluate, check, write data files, commit once."""

    def __init__(
        self,
        warehouse: ObjectStore,
        slug: str,
        pipeline: Pipeline,
        table: AnalyticTable,
        inputs: RawInputs,
        lookups: dict,
        dimensions: LoadedDimensions,
        report: RunReport,
        log: logging.Logger,
        scratch: Path,
        progress: ProgressTracker,
    ) -> None:
        self.warehouse, self.slug, self.pipeline, self.table = warehouse, slug, pipeline, table
        self.inputs, self.lookups, self.report, self.log = inputs, lookups, report, log
        self.dimensions = dimensions
        self.progress = progress
        self.table_report = report.tables[table.id]
        self.prefix = keys.table_prefix(slug, table.id)
        self.where: TableLocation = warehouse.table_location(self.prefix)
        # Local tables are written in place (uncommitted files are invisible to readers); S3 tables are
        # staged locally and uploaded before the commit.
        self.out_root = self.where.local_root or scratch / "tables" / table.id
        self.partition_keys = list(table.partition_keys)

    def execute(self, *, clean_run: bool, info: dict[str, str]) -> None:
        current = self._open()
        state = (
            None
            if current is None or clean_run
            else delta.recorded_state(self.where, current.version(), self.warehouse, self.prefix)
        )
        active = delta.active_files(current) if current is not None else pl.DataFrame()
        replace_all = current is None or state is None
        plans = [
            plan for m in self.pipeline.mappings_of_table(self.table.id) if (plan := self._plan(m, state))
        ]
        expected = self._expected_schema(plans)
        schema_changed = current is not None and not delta.same_schema(current, expected)
        if schema_changed:
            replace_all = True
        if replace_all:
            for plan in plans:
                plan.full, plan.to_process, plan.gone = True, list(plan.files), set()
        self.progress.plan(
            sum(len(p.to_process) for p in plans), sum(i.size for p in plans for i in p.to_process)
        )
        self.progress.phase("parsing", table=self.table.id)
        change = delta.Commit(replace_all=replace_all, schema_changed=schema_changed)
        new_state: dict[str, delta.MappingState] = {}
        leaving: dict[str, set[str] | None] = {}  # mapping → raw files whose rows leave (None: all)
        for plan in plans:
            outcome = self._run_mapping(plan, active)
            if outcome is None:  # failed: its rows and state stay as they were (gone when replacing all)
                if plan.previous is not None and not replace_all:
                    new_state[plan.mapping.id] = plan.previous
                continue
            added, files = outcome
            change.added += added
            new_state[plan.mapping.id] = delta.MappingState(plan.signature, files)
            if plan.full or plan.gone:
                leaving[plan.mapping.id] = None if plan.full else plan.gone
        if not replace_all:
            # Rows of mappings no longer feeding this table leave it too.
            for mapping_id in set(state or {}) - {plan.mapping.id for plan in plans}:
                leaving[mapping_id] = None
            self.progress.phase("writing")
            change.removed, rewritten = self._remove(active, leaving)
            change.added += rewritten
        state_changed = state is None or new_state != state
        if change.empty and not state_changed:
            self.log.info("table %s: nothing new, no commit", self.table.id)
            return
        if replace_all and not change.added and current is None:
            return  # nothing to create a table from
        self.progress.phase("writing")
        self._upload(change.added)
        self.progress.phase("committing")
        metadata = {**info, delta.META_STATE: delta.encode_state(new_state)}
        version = delta.commit(self.where, current, change, expected, self.partition_keys, metadata)
        partitions = change.partitions_written(self.partition_keys)
        self.table_report.version = version
        self.table_report.partitions = partitions
        self.table_report.rows_written = change.rows_added
        self.table_report.rows_removed = change.rows_removed
        self.report.partitions_written += len(partitions) if self.partition_keys else int(bool(change.added))
        self.log.info(
            "table %s: version %d, %d row(s) in %d file(s) added, %d row(s) in %d file(s) removed",
            self.table.id,
            version,
            change.rows_added,
            len(change.added),
            change.rows_removed,
            len(change.removed),
        )

    def _open(self) -> DeltaTable | None:
        current = delta.open_table(self.where)
        if current is None and self._has_legacy_files():
            from karet_defs.engine.migrate_tables import convert_legacy_table

            convert_legacy_table(self.warehouse, self.slug, self.table)
            current = delta.open_table(self.where)
        return current

    def _has_legacy_files(self) -> bool:
        return any(info.key.endswith(".parquet") for info in self.warehouse.list(self.prefix))

    def _plan(self, mapping: Mapping, state: delta.TableState | None) -> _MappingPlan | None:
        source = self.pipeline.source(mapping.source_container_id)
        if source is None:
            return None
        prefix = source.resolved_prefix(self.slug)
        files = [info for key, info in self.inputs.infos.items() if key.startswith(prefix)]
        signature = mapping_signature(self.pipeline, mapping, self.table, self.dimensions.fingerprints)
        previous = (state or {}).get(mapping.id)
        if previous is None or previous.signature != signature:
            return _MappingPlan(mapping, source, signature, files, list(files), set(), True, previous)
        current = {info.key: info.etag for info in files}
        changed = {key for key, etag in current.items() if previous.files.get(key) not in (None, etag)}
        removed = set(previous.files) - set(current)
        to_process = [info for info in files if previous.files.get(info.key) != info.etag]
        full = False
        if self.table.dedup_keys and (changed or removed or _sorts_before(to_process, previous.files)):
            # Which row wins a duplicate key depends on every file's rows: evaluate them all again.
            full, to_process = True, list(files)
        return _MappingPlan(mapping, source, signature, files, to_process, changed | removed, full, previous)

    def _expected_schema(self, plans: list[_MappingPlan]) -> pa.Schema:
        """The table's schema after this run: the mappings' columns, partition keys, hidden columns."""
        columns: dict[str, pl.DataType] = {}
        for plan in plans:
            try:
                evaluation = self._compile(plan.mapping, plan.source)
                empty = pl.LazyFrame(schema={c.name: declared_dtype(c) for c in plan.source.schema_})
                produced = evaluation.apply(empty).collect_schema()
            except (KaretError, pl.exceptions.PolarsError):
                continue  # reported when the mapping runs
            for name, dtype in produced.items():
                columns.setdefault(name, dtype)
        for key in self.partition_keys:
            columns[key] = columns.pop(key, pl.String())
        columns[delta.SOURCE_COLUMN] = pl.String()
        columns[delta.MAPPING_COLUMN] = pl.String()
        return pl.DataFrame(schema=columns).to_arrow().schema

    def _compile(self, mapping: Mapping, source: SourceContainer) -> _Evaluation:
        dimensions = self.dimensions.tables
        columns = compile_columns([(c.name, c.expr) for c in mapping.columns], self.lookups, dimensions)
        where = compile_expr(mapping.where, self.lookups, dimensions) if mapping.where is not None else None
        record_filter = (
            compile_expr(source.record_filter, self.lookups, dimensions)
            if source.record_filter is not None
            else None
        )
        return _Evaluation(columns, where, record_filter)

    def _run_mapping(
        self, plan: _MappingPlan, active: pl.DataFrame
    ) -> tuple[list[delta.DataFile], dict[str, str]] | None:
        """Evaluate the plan's files into data files; return (added, raw files now held with their ETags),
        or None when the mapping failed (reported) and must change nothing."""
        mapping = plan.mapping
        try:
            evaluation = self._compile(mapping, plan.source)
        except KaretError as exc:
            self._fail(mapping, f"ingest {mapping.id}: evaluator error: {exc.message}")
            return None
        kept: dict[str, str] = {}
        if not plan.full and plan.previous is not None:
            kept = {k: v for k, v in plan.previous.files.items() if k not in plan.gone}
        existing = _existing_rows(self, active, mapping.id, set(kept)) if kept else None
        writer = _MappingWriter(self, plan, evaluation, existing)
        try:
            succeeded = writer.write(plan.to_process)
            if plan.to_process and not succeeded and not kept:
                # Every file was held back by name: Karet's error stands, and the table drops the rows
                # those files held before, as it would for any one bad file among good ones.
                self.report.add_error(f"ingest {mapping.id}: no files succeeded during ingestion")
            self.progress.phase("checks")
            writer.verdict()
        except _MappingFailed as exc:
            writer.discard()
            self._fail(mapping, str(exc), exc.violations)
            return None
        self.table_report.mappings_written.append(mapping.id)
        self.table_report.rows_deduped += writer.deduped
        self.table_report.columns.update(writer.columns)
        return writer.added, {**kept, **{info.key: info.etag for info in succeeded}}

    def _fail(self, mapping: Mapping, message: str, violations: list[Violation] | None = None) -> None:
        self.report.add_error(message)
        self.table_report.mappings_failed.append(mapping.id)
        self.table_report.violations.extend(violations or [])

    def _files_of(
        self, active: pl.DataFrame, mapping_id: str, sources: set[str] | None
    ) -> list[dict[str, object]]:
        """Data files holding rows of ``mapping_id`` (from ``sources`` only, when given)."""
        if active.height == 0:
            return []
        return [row for row in active.iter_rows(named=True) if _holds(row, mapping_id, sources)]

    def _remove(
        self, active: pl.DataFrame, leaving: dict[str, set[str] | None]
    ) -> tuple[list[dict[str, object]], list[delta.DataFile]]:
        """The data files to remove for the ``leaving`` rows, and rewrites of those that also hold rows
        which stay (files merged by compaction)."""
        removed: dict[str, dict[str, object]] = {}
        for mapping_id, sources in leaving.items():
            for row in self._files_of(active, mapping_id, sources):
                removed.setdefault(str(row["path"]), row)
        rewritten: list[delta.DataFile] = []
        for row in removed.values():
            if _exact_owner(row) is None:
                rewritten += self._rewrite_without(row, leaving)
        return list(removed.values()), rewritten

    def _rewrite_without(
        self, row: MappingOf[str, object], leaving: dict[str, set[str] | None]
    ) -> list[delta.DataFile]:
        relative = urllib.parse.unquote(str(row["path"]))
        key = self.prefix + relative
        leaves = pl.lit(False)
        for mapping_id, sources in leaving.items():
            rule = pl.col(delta.MAPPING_COLUMN) == mapping_id
            if sources is not None:
                rule = rule & pl.col(delta.SOURCE_COLUMN).is_in(sorted(sources))
            leaves = leaves | rule.fill_null(False)
        folder = relative.rpartition("/")[0]
        name = delta.data_file_name("rewrite", relative)
        target_relative = f"{folder}/{name}" if folder else name
        target = self.out_root / target_relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with scratch_dir("rewrite") as tmp:
            local = self.warehouse.local_path(key)
            if local is None:
                local = Path(tmp) / "in.parquet"
                self.warehouse.download(key, local)
            pl.scan_parquet(local).filter(~leaves).sink_parquet(
                target, compression="zstd", statistics=True, engine="streaming"
            )
        partition_values = {k: _partition_value_of(row, k) for k in self.partition_keys}
        described = delta.describe_file(target, target_relative, partition_values, "", "")
        if described.rows == 0:
            target.unlink(missing_ok=True)
            return []
        return [described]

    def _upload(self, added: list[delta.DataFile]) -> None:
        if self.where.local_root is not None or not added:
            return

        def put(data_file: delta.DataFile) -> None:
            self.warehouse.put_file(
                self.prefix + data_file.relative,
                self.out_root / data_file.relative,
                content_type="application/octet-stream",
            )

        with ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
            list(pool.map(put, added))


_Item = tuple[ObjectInfo, Path, tuple[str, ...] | None]  # raw file, local path, CSV header


class _MappingWriter:
    """Writes one mapping's rows, batch by batch, as data files under the table's output root.

    ``existing`` are the rows the table keeps of this mapping: with ``dedup_keys`` a new row whose key they
    already hold is dropped (the plan guarantees they come from files sorting earlier), and ``unique``
    assertions are checked over them and the new rows together.
    """

    def __init__(
        self, run: _TableRun, plan: _MappingPlan, evaluation: _Evaluation, existing: pl.LazyFrame | None
    ) -> None:
        self.run, self.plan, self.evaluation, self.existing = run, plan, evaluation, existing
        self.table, self.mapping = run.table, plan.mapping
        self.added: list[delta.DataFile] = []
        self.columns: dict[str, str] = {}
        self.deduped = 0
        self._counts: dict[str, int] = {}
        self._checks: _RowChecks | None = None
        self._batches = 0
        self.quarantined: set[str] = set()  # raw files held back for rows that fail a row check
        self._rows_told = (0, 0)  # (read, written) rows told to the progress tracker, taken back on discard

    def write(self, files: list[ObjectInfo]) -> list[ObjectInfo]:
        """Evaluate and write ``files``; return those that succeeded (failures are reported by name)."""
        progress = self.run.progress
        ready: list[_Item] = []
        for info in files:
            progress.file(info.key)
            path = self.run.inputs.path(info.key)
            if path is None:
                progress.done(1, info.size)
                continue
            self.run.inputs.parsed += 1
            header = None
            if self.plan.source.format == "csv":
                try:
                    header = csv_header(path, self.plan.source.schema_)
                except FileReadError as exc:
                    self.run.report.add_error(f"file {info.key}: {exc}")
                    progress.done(1, info.size)
                    continue
            ready.append((info, path, header))
        if not ready:
            return []
        progress.phase("transforming")
        if self.table.dedup_keys:
            written = self._write_deduplicated(ready)
            progress.done(len(ready), sum(info.size for info, _, _ in ready))
            return written
        succeeded: list[ObjectInfo] = []
        for batch in _batches(ready):
            progress.file(batch[0][0].key)
            if len(batch) > 1 and self._write_batch(batch) is None:
                succeeded += [info for info, _, _ in batch if info.key not in self.quarantined]
            else:
                for item in batch:  # alone, so that a bad file is isolated and named
                    error = self._write_batch([item])
                    if error is None:
                        succeeded += [item[0]] if item[0].key not in self.quarantined else []
                    else:
                        reason = describe_read_error(error, item[1], self.plan.source)
                        self.run.report.add_error(f"file {item[0].key}: {reason}")
            progress.done(len(batch), sum(info.size for info, _, _ in batch))
        return succeeded

    def _write_deduplicated(self, ready: list[_Item]) -> list[ObjectInfo]:
        """One query over every file in listing order, so the first row of a key wins across files; a file
        that fails to parse or is quarantined is left out and the query runs again without it (its rows
        must not win a key)."""
        error = self._write_batch(ready)
        if error is None and not self.quarantined:
            return [info for info, _, _ in ready]
        self.discard()
        self._counts, self._checks, self._batches, self.deduped = {}, None, 0, 0
        good = [item for item in ready if item[0].key not in self.quarantined]
        if error is not None:
            good = [item for item in good if self._probe(item)]
        if not good:
            return []
        held_back = set(self.quarantined)
        if self._write_batch(good) is not None or self.quarantined != held_back:
            self.discard()  # not deterministic: nothing of the mapping is trusted
            return []
        return [info for info, _, _ in good]

    def _frame(self, batch: list[_Item]) -> pl.LazyFrame:
        header = batch[0][2]
        if len(batch) > 1 and header is not None and all(h == header for _, _, h in batch):
            path_column = "__karet_path"
            key_of = {str(path): info.key for info, path, _ in batch}
            scan = scan_csv_files(
                [p for _, p, _ in batch], self.plan.source.schema_, header, path_column=path_column
            )
            frame = self.evaluation.apply(scan, keep=(path_column,))
            source = pl.col(path_column).replace_strict(key_of, return_dtype=pl.String)
            frame = frame.with_columns(source.alias(delta.SOURCE_COLUMN)).drop(path_column)
        else:
            frames = [
                self.evaluation.apply(read_source_file(path, self.plan.source)).with_columns(
                    pl.lit(info.key, pl.String).alias(delta.SOURCE_COLUMN)
                )
                for info, path, _ in batch
            ]
            frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
        return frame.with_columns(pl.lit(self.mapping.id, pl.String).alias(delta.MAPPING_COLUMN))

    def _write_batch(self, batch: list[_Item]) -> pl.exceptions.PolarsError | None:
        """One query: evaluate, (de-duplicate,) write one file per (raw file, partition) and count the row
        checks. On a Polars error nothing is left behind and the error is returned."""
        sink = _PartitionedSink(self.run.out_root, self.run.partition_keys, self.mapping.id)
        try:
            frame = self._frame(batch)
            schema = frame.collect_schema()
            check_partition_keys(schema, {}, self.table)
            rows = self._deduplicated(frame) if self.table.dedup_keys else frame
            checks = _RowChecks(schema, self.mapping, self.table)
            queries = [sink.query(rows), checks.query(frame), checks.failing_files(frame)]
            results = pl.collect_all(queries, engine="streaming")
            written = sink.describe()
        except PartitionError as exc:
            sink.discard()
            raise _MappingFailed(f"partition {self.mapping.id}: {exc}") from exc
        except pl.exceptions.PolarsError as exc:
            sink.discard()
            return exc
        totals = results[1].row(0, named=True)
        failing = results[2]
        if failing.height:
            # Their rows leave this batch: their data files go, their counts with them.
            held = set(failing.get_column(delta.SOURCE_COLUMN).to_list())
            for data_file in written:
                if data_file.source in held:
                    (self.run.out_root / data_file.relative).unlink(missing_ok=True)
            written = [f for f in written if f.source not in held]
            for name in totals:
                if name in failing.columns:
                    totals[name] = int(totals[name] or 0) - int(failing.get_column(name).sum() or 0)
            for row in failing.iter_rows(named=True):
                self._quarantine(batch, row, checks)
        for name, value in totals.items():
            self._counts[name] = self._counts.get(name, 0) + int(value or 0)
        self._checks = checks
        self._batches += 1
        rows_read, rows_written = int(totals[_ROWS]), sum(f.rows for f in written)
        self.deduped += rows_read - rows_written
        self.added += written
        self.run.progress.rows(rows_read, rows_written)
        self._rows_told = (self._rows_told[0] + rows_read, self._rows_told[1] + rows_written)
        self.columns.update({n: str(t) for n, t in schema.items() if n not in delta.HIDDEN_COLUMNS})
        return None

    def _deduplicated(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        keys_ = self.table.dedup_keys
        missing = [k for k in keys_ if k not in frame.collect_schema()]
        if missing:
            raise PartitionError(f"dedup key `{missing[0]}` is not produced by the mapping")
        rows = frame.unique(subset=keys_, keep="first", maintain_order=True)
        if self.existing is not None:
            held = self.existing.select(keys_).unique()
            rows = rows.join(held, on=keys_, how="anti", nulls_equal=True, maintain_order="left")
        return rows

    def _probe(self, item: _Item) -> bool:
        """Whether one file evaluates; if not, it is reported by name (with its line where known)."""
        info, path, _ = item
        try:
            # Every column counted, so that every value is parsed and evaluated.
            frame = self.evaluation.apply(read_source_file(path, self.plan.source))
            frame.select(pl.all().null_count()).collect(engine="streaming")
        except FileReadError as exc:
            self.run.report.add_error(f"file {info.key}: {exc}")
            return False
        except pl.exceptions.PolarsError as exc:
            self.run.report.add_error(f"file {info.key}: {describe_read_error(exc, path, self.plan.source)}")
            return False
        return True

    def _quarantine(self, batch: list[_Item], failing: dict[str, object], checks: "_RowChecks") -> None:
        """Hold one raw file back and report it: the file, then each example row's line, column, value
        (as written in the raw file) and what the column expects."""
        key = str(failing[delta.SOURCE_COLUMN])
        self.quarantined.add(key)
        path = next(p for info, p, _ in batch if info.key == key)
        examples = self._examples(key, path, checks)
        total = int(failing[_ROWS_FAILING] or 0)
        for error in examples:
            self.run.report.file_errors.append(error)
        first = examples[0] if examples else None
        if first is None:
            detail = f"{total} row(s) fail a check"
        else:
            shown = "(empty)" if first.value is None else f'"{first.value}"'
            detail = f"line {first.line}: {first.column} {shown} {first.message}"
            if total > 1:
                detail += f" (and {total - 1} more row(s))"
        self.run.report.add_error(f"file {key} {detail}; the file is held back until it is fixed")
        self.run.table_report.quarantined.append(key)

    def _examples(self, key: str, path: Path, checks: "_RowChecks") -> list[FileError]:
        """The first failing rows of one file, read again alone (so lines are the file's own)."""
        source = self.plan.source
        lines = read_source_file(path, source).with_row_index(_LINE, offset=2)
        found = checks.failing_rows(self.evaluation.apply(lines, keep=(_LINE,)), QUARANTINE_EXAMPLES)
        wanted = found.get_column(_LINE).to_list()
        raw = raw_csv_values(path, wanted) if source.format == "csv" else {}
        errors: list[FileError] = []
        for row in found.iter_rows(named=True):
            for check in checks.failed_by(row):
                read_from, date_format = self._raw_origin(check.column)
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

    def _raw_origin(self, column: str) -> tuple[str | None, str | None]:
        """The one source column a table column is computed from (its raw text is what a person should
        see), and the date format it is parsed with, if any."""
        for out in self.mapping.columns:
            if out.name != column:
                continue
            nodes = list(iter_nodes(out.expr))
            sources = {node.name for node in nodes if isinstance(node, Col)}
            formats = [node.format for node in nodes if isinstance(node, ParseDate)]
            return (sources.pop() if len(sources) == 1 else None), (formats[0] if formats else None)
        return None, None

    def verdict(self) -> None:
        """Raise ``_MappingFailed`` if the rows the mapping will hold break an assertion."""
        if self._checks is None:
            return
        across = _has_unique(self.table) and (
            self.existing is not None or self._batches > 1 or bool(self.quarantined)
        )
        counts = {k: v for k, v in self._counts.items() if not (across and k.endswith("\x00unique"))}
        self._checks.verdict(counts)
        if across:
            self._check_unique_across()

    def _check_unique_across(self) -> None:
        names = [c.name for c in self.table.schema_ if c.assertions is not None and c.assertions.unique]
        fresh = pl.scan_parquet([self.run.out_root / f.relative for f in self.added])
        parts = [fresh] if self.existing is None else [self.existing, fresh]
        present = [n for n in names if n in fresh.collect_schema()]
        union = pl.concat([p.select(present) for p in parts], how="vertical_relaxed")
        checks = _RowChecks(union.collect_schema(), self.mapping, self.table)
        counts = checks.query(union).collect(engine="streaming").row(0, named=True)
        checks.verdict({k: v for k, v in counts.items() if k.endswith("\x00unique")})

    def discard(self) -> None:
        for data_file in self.added:
            (self.run.out_root / data_file.relative).unlink(missing_ok=True)
        self.added = []
        self.run.progress.rows(-self._rows_told[0], -self._rows_told[1])
        self._rows_told = (0, 0)


class _PartitionedSink:
    """A lazy sink writing one Parquet file per (raw file, partition) under ``root``, Hive folders named by
    ``render_segment``, the partition key columns kept only in the path (and the Delta log)."""

    def __init__(self, root: Path, partition_keys: list[str], mapping_id: str) -> None:
        self.root, self.keys, self.mapping_id = root, partition_keys, mapping_id
        self._records: list[tuple[str, dict[str, str | None], str]] = []

    def query(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.with_columns(pl.col(delta.SOURCE_COLUMN).alias(_FILE_KEY)).sink_parquet(
            pl.PartitionBy(
                self.root,
                key=[*self.keys, _FILE_KEY],
                include_key=False,
                file_path_provider=self._path_of,
                approximate_bytes_per_file=None,
            ),
            compression="zstd",
            statistics=True,
            mkdir=True,
            lazy=True,
        )

    def _path_of(self, args: FileProviderArgs) -> str:
        *values, source = args.partition_keys.row(0)
        segments: list[str] = []
        partition_values: dict[str, str | None] = {}
        for key, value in zip(self.keys, values, strict=True):
            # A null key fails the mapping (row checks); the file is written and then discarded.
            segments.append(f"{key}={_NULL_SEGMENT if value is None else render_segment(value)}")
            partition_values[key] = None if value is None else delta.partition_string(value)
        relative = "/".join([*segments, delta.data_file_name(self.mapping_id, source)])
        self._records.append((relative, partition_values, source))
        return relative

    def describe(self) -> list[delta.DataFile]:
        return [
            delta.describe_file(self.root / rel, rel, values, self.mapping_id, source)
            for rel, values, source in self._records
        ]

    def discard(self) -> None:
        for relative, _, _ in self._records:
            (self.root / relative).unlink(missing_ok=True)
        self._records = []


class _RowChecks:
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
        keys_ = [key for key in table.partition_keys if key in schema]
        self._row_checks = [
            *row_checks(self._produced, table),
            *(
                RowCheck(
                    k,
                    "nulls",
                    pl.col(k).is_null(),
                    "must have a value (a partition key: coalesce it to a default)",
                )
                for k in keys_
            ),
        ]

    def query(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.select(*self._aggregates, pl.len().alias(_ROWS))

    def failing_files(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Per raw file with failing rows: its per-check counts and ``_ROWS_FAILING``."""
        if not self._row_checks:
            return frame.select(pl.col(delta.SOURCE_COLUMN), pl.lit(0).alias(_ROWS_FAILING)).head(0)
        counts = [c.failing.sum().alias(f"{c.column}\x00{c.check}") for c in self._row_checks]
        any_failing = self._any_failing().sum().alias(_ROWS_FAILING)
        per_file = frame.group_by(delta.SOURCE_COLUMN).agg(*counts, any_failing, pl.len().alias(_ROWS))
        return per_file.filter(pl.col(_ROWS_FAILING) > 0)

    def failing_rows(self, frame: pl.LazyFrame, limit: int) -> pl.DataFrame:
        flags = [
            c.failing.fill_null(False).alias(f"__karet_fails_{i}") for i, c in enumerate(self._row_checks)
        ]
        return frame.filter(self._any_failing()).with_columns(flags).head(limit).collect(engine="streaming")

    def failed_by(self, row: MappingOf[str, object]) -> list[RowCheck]:
        return [c for i, c in enumerate(self._row_checks) if row.get(f"__karet_fails_{i}")]

    def _any_failing(self) -> pl.Expr:
        return pl.any_horizontal([c.failing.fill_null(False) for c in self._row_checks])

    def verdict(self, counts: dict[str, object]) -> None:
        """Raise ``_MappingFailed`` for the first failing check, given the row of ``query``'s result."""
        violations = violations_from(counts, self._produced, self.table)
        if violations:
            raise _MappingFailed(
                f"assertion {self.mapping.id}: " + "; ".join(str(v) for v in violations), violations
            )
        try:
            check_partition_keys(self.schema, counts, self.table)
        except PartitionError as exc:
            raise _MappingFailed(f"partition {self.mapping.id}: {exc}") from exc


def _existing_rows(
    run: _TableRun, active: pl.DataFrame, mapping_id: str, kept: set[str]
) -> pl.LazyFrame | None:
    """The rows the table keeps of ``mapping_id`` (from the ``kept`` raw files), read from its data files."""
    files = run._files_of(active, mapping_id, kept)
    if not files:
        return None
    uris = [f"{run.where.uri}/{urllib.parse.unquote(str(row['path']))}" for row in files]
    frame = pl.scan_parquet(
        uris, storage_options=run.where.reader_options(), missing_columns="insert", extra_columns="ignore"
    )
    return frame.filter(
        (pl.col(delta.MAPPING_COLUMN) == mapping_id) & pl.col(delta.SOURCE_COLUMN).is_in(sorted(kept))
    )


def _batches(
    ready: list[tuple[ObjectInfo, Path, tuple[str, ...] | None]],
) -> list[list[tuple[ObjectInfo, Path, tuple[str, ...] | None]]]:
    batches: list[list[tuple[ObjectInfo, Path, tuple[str, ...] | None]]] = []
    size = 0
    for item in ready:
        current = batches[-1] if batches else None
        fits = current is not None and len(current) < BATCH_FILES and size + item[0].size <= BATCH_BYTES
        if current is not None and fits:
            current.append(item)
            size += item[0].size
        else:
            batches.append([item])
            size = item[0].size
    return batches


def _sorts_before(new: list[ObjectInfo], held: MappingOf[str, str]) -> bool:
    """Whether a new or changed raw file sorts before one the table already holds."""
    return bool(new and held) and min(info.key for info in new) < max(held)


def _has_unique(table: AnalyticTable) -> bool:
    return any(c.assertions is not None and c.assertions.unique for c in table.schema_)


def _exact_owner(row: MappingOf[str, object]) -> tuple[str, str] | None:
    """(mapping, raw file) when statistics show every row of the data file has that pair."""
    low_m, high_m = row.get(f"min.{delta.MAPPING_COLUMN}"), row.get(f"max.{delta.MAPPING_COLUMN}")
    low_s, high_s = row.get(f"min.{delta.SOURCE_COLUMN}"), row.get(f"max.{delta.SOURCE_COLUMN}")
    if low_m is None or low_m != high_m or low_s is None or low_s != high_s:
        return None
    return str(low_m), str(low_s)


def _holds(row: MappingOf[str, object], mapping_id: str, sources: set[str] | None) -> bool:
    owner = _exact_owner(row)
    if owner is not None:
        return owner[0] == mapping_id and (sources is None or owner[1] in sources)
    low_m, high_m = row.get(f"min.{delta.MAPPING_COLUMN}"), row.get(f"max.{delta.MAPPING_COLUMN}")
    if low_m is not None and high_m is not None and not (str(low_m) <= mapping_id <= str(high_m)):
        return False
    if sources is None:
        return True
    low_s, high_s = row.get(f"min.{delta.SOURCE_COLUMN}"), row.get(f"max.{delta.SOURCE_COLUMN}")
    if low_s is None or high_s is None:
        return True
    return any(str(low_s) <= source <= str(high_s) for source in sources)


def _partition_value_of(row: MappingOf[str, object], key: str) -> str | None:
    value = row.get(f"partition.{key}")
    return None if value is None else delta.partition_string(value)
