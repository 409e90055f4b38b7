"""Running a whole pipeline (SPEC §4, REFERENCE §3.3): the one entry point Dagster assets and scripts call.

Inputs are discovered per source and fetched once; every mapping is evaluated with vectorised Polars
expressions into one fragment per raw file (kept in the engine cache, so later runs parse only new or changed
files), and one bad file is reported and skipped while the good ones are written. On a first or clean run a
single query parses every file once and writes both the fragments and the partitions. A mapping's output is
checked (assertions), de-duplicated, split into Hive partitions and published object by object; its stale
files are reaped only after all of its new files are in place.
"""

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from karet_defs.catalog import read_pipeline
from karet_defs.config.models import AnalyticTable, Mapping, Pipeline, SourceContainer
from karet_defs.engine import fragments
from karet_defs.engine.assertions import Violation, assertion_aggregates, violations_from
from karet_defs.engine.incremental import (
    FileEntry,
    Manifest,
    forget_manifest,
    fragment_parts,
    load_manifest,
    partition_frame,
    parts_by_file,
    save_manifest,
    supports_incremental,
)
from karet_defs.engine.read import (
    SOURCE_EXTENSIONS,
    FileReadError,
    csv_header,
    describe_read_error,
    read_source_file,
    scan_csv_files,
)
from karet_defs.engine.write import (
    PartitionedOutput,
    PartitionError,
    PublishError,
    check_partition_keys,
    dedup,
    partition_null_counts,
    publish,
    reap_stale,
    render_segment,
    write_partitions,
)
from karet_defs.errors import KaretError
from karet_defs.expr.compile import CompiledColumns, compile_columns, compile_expr
from karet_defs.expr.lookups import build_lookup_registry
from karet_defs.scratch import reap_orphans, scratch_dir
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, ObjectStore, Stores

_log = logging.getLogger("karet.engine")
# Bumped whenever the engine would evaluate the same file differently, so cached fragments are not reused.
FRAGMENT_FORMAT = 2
BATCH_FILES = 64
BATCH_BYTES = 64 * 2**20
_PATH = "__karet_source_file"


@dataclass
class TableReport:
    """What one run did to one analytic table."""

    table_id: str
    partitions: list[str] = field(default_factory=list)
    rows_written: int = 0
    rows_deduped: int = 0
    mappings_written: list[str] = field(default_factory=list)
    mappings_failed: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)


@dataclass
class RunReport:
    """The worker's answer: ``partitions_written``, ``files_processed``, ``errors``, plus per-table facts."""

    partitions_written: int = 0
    files_processed: int = 0
    files_parsed: int = 0
    errors: list[str] = field(default_factory=list)
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
    cache_dir: Path | None = None,
) -> RunReport:
    """Run every mapping of a pipeline (or only those feeding ``table_ids``) and publish its tables.

    With ``cache_dir``, each raw file's evaluated fragment is kept per mapping, keyed by the file's ETag and
    the mapping's definition, so a later run parses only new or changed files.
    """
    log = log or _log
    pipeline = read_pipeline(stores, slug)
    tables = [t for t in pipeline.analytic_tables if table_ids is None or t.id in table_ids]
    report = RunReport(tables={t.id: TableReport(t.id) for t in tables})
    if clean_run:
        for table in tables:
            prefix = keys.table_prefix(slug, table.id)
            deleted = stores.warehouse.delete_many([i.key for i in stores.warehouse.list(prefix)])
            log.info("clean_run: deleted %d object(s) under %s", deleted, prefix)
    mappings = [m for m in pipeline.mappings if m.analytic_table_id in report.tables]
    reap_orphans()  # scratch of runs killed on this host: downloaded inputs, staged partitions
    with scratch_dir("run") as tmp:
        inputs = RawInputs(
            stores.lake, Path(tmp) / "inputs", _list_inputs(stores.lake, pipeline, slug, mappings)
        )
        if not inputs.infos:
            log.info("no input files found for pipeline %s", slug)
            return report
        lookups = build_lookup_registry(pipeline.lookup_mappings)
        for mapping in mappings:
            source = pipeline.source(mapping.source_container_id)
            table = pipeline.table(mapping.analytic_table_id)
            if source is None or table is None:
                continue
            prefix = source.resolved_prefix(slug)
            files = [info for key, info in inputs.infos.items() if key.startswith(prefix)]
            if not files:
                continue
            staging = FragmentCache.for_mapping(cache_dir, slug, pipeline, mapping, Path(tmp))
            _run_mapping(
                stores.warehouse, slug, mapping, source, table, files, inputs, staging, lookups, report, log
            )
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


class FragmentCache:
    """Where a mapping's per-file fragments live: a persistent cache keyed by ETag, or a scratch folder."""

    def __init__(self, folder: Path, signature: str, persistent: bool) -> None:
        self.folder = folder
        self.persistent = persistent
        self.used: set[str] = set()
        # One directory read instead of a stat per file: an incremental run over 1,000 files checks them all.
        try:
            self._present = {entry.name for entry in os.scandir(folder)}
        except FileNotFoundError:
            self._present = set()
        # The definition can be long and is the same for every file: hashed once, copied per file.
        self._signed = hashlib.sha256(f"{signature}\0".encode())

    @classmethod
    def for_mapping(
        cls, cache_dir: Path | None, slug: str, pipeline: Pipeline, mapping: Mapping, scratch: Path
    ) -> "FragmentCache":
        if cache_dir is None:
            return cls(scratch / "staged" / mapping.id, "", persistent=False)
        source = pipeline.source(mapping.source_container_id)
        definition = json.dumps(
            [
                FRAGMENT_FORMAT,
                mapping.model_dump(mode="json", by_alias=True),
                source.model_dump(mode="json", by_alias=True) if source else None,
                [lookup.model_dump(mode="json") for lookup in pipeline.lookup_mappings],
            ],
            sort_keys=True,
        )
        return cls(cache_dir / slug / mapping.id, definition, persistent=True)

    def fragment(self, info: ObjectInfo) -> Path:
        digest = self._signed.copy()
        digest.update(f"{info.key}\0{info.etag}".encode())
        name = f"{digest.hexdigest()}{fragments.SUFFIX}"
        self.used.add(name)
        return self.folder / name

    def holds(self, fragment: Path) -> bool:
        """Whether ``fragment`` was complete in the cache when the run started."""
        return fragment.name in self._present

    def evict_unused(self) -> None:
        """Drop fragments of files that are gone or changed, so the cache mirrors the current inputs."""
        if self.persistent:
            for name in self._present - self.used:
                if name.endswith((fragments.SUFFIX, ".parquet")):  # .parquet: FRAGMENT_FORMAT 1
                    (self.folder / name).unlink(missing_ok=True)


def _run_mapping(
    warehouse: ObjectStore,
    slug: str,
    mapping: Mapping,
    source: SourceContainer,
    table: AnalyticTable,
    files: list[ObjectInfo],
    inputs: RawInputs,
    staging: FragmentCache,
    lookups: dict,
    report: RunReport,
    log: logging.Logger,
) -> None:
    table_report = report.tables[table.id]

    def fail(message: str) -> None:
        report.add_error(message)
        table_report.mappings_failed.append(mapping.id)

    try:
        columns = compile_columns([(c.name, c.expr) for c in mapping.columns], lookups)
        where = compile_expr(mapping.where, lookups) if mapping.where is not None else None
        record_filter = (
            compile_expr(source.record_filter, lookups) if source.record_filter is not None else None
        )
    except KaretError as exc:
        fail(f"ingest {mapping.id}: evaluator error: {exc.message}")
        return

    with scratch_dir("mapping") as tmp:
        evaluation = _Evaluation(columns, where, record_filter)
        one_pass = _OnePass(mapping, table, Path(tmp) / "one-pass")
        staged, in_one_pass = _stage_files(
            staging, files, inputs, source, evaluation, report, one_pass=one_pass
        )
        staging.evict_unused()
        if not staged:
            fail(f"ingest {mapping.id}: no files succeeded during ingestion")
            return
        prefix = keys.table_prefix(slug, table.id)
        manifest = load_manifest(staging.folder, prefix) if staging.persistent else None
        if staging.persistent:
            # Forgotten first: if this run fails halfway, the next one must not trust the old record.
            forget_manifest(staging.folder)
        try:
            if in_one_pass:
                one_pass.verdict()
                parts = one_pass.output.files()
                outcome = _publish_parts(warehouse, prefix, mapping, staged, parts, parts_of=one_pass.parts)
            elif manifest is not None and supports_incremental(table):
                outcome = _publish_changed_partitions(
                    warehouse, prefix, mapping, table, staged, manifest, tmp
                )
            else:
                outcome = None
            if outcome is None:
                outcome = _publish_all(warehouse, prefix, mapping, table, staged, tmp)
        except _MappingFailed as exc:
            if exc.violations:
                table_report.violations.extend(exc.violations)
            fail(str(exc))
            return
        if staging.persistent and supports_incremental(table):
            save_manifest(staging.folder, _manifest_after(prefix, table, staged, outcome))
    log.info(
        "mapping %s: %d row(s) in %d partition file(s) written, %d stale file(s) reaped",
        mapping.id,
        outcome.rows,
        len(outcome.written),
        len(outcome.reaped),
    )
    report.partitions_written += len(outcome.written)
    table_report.partitions.extend(k[len(prefix) :] for k in outcome.written)
    table_report.rows_written += outcome.rows
    table_report.rows_deduped += outcome.deduped
    table_report.mappings_written.append(mapping.id)
    table_report.columns.update(outcome.columns)


class _MappingFailed(Exception):
    def __init__(self, message: str, violations: list[Violation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


@dataclass
class _Published:
    written: dict[str, str]
    reaped: list[str]
    rows: int
    deduped: int
    columns: dict[str, str]
    parts_of: dict[str, list[list[object]]] | None = None  # file key → its partitions, when known
    published: dict[str, str] | None = None  # every file of the mapping (relative key → ETag), when not all


class _RowChecks:
    """Row-level checks of a mapping's output (assertions, then partition keys) as one aggregate query,
    which can run alone or beside the query that writes the output."""

    def __init__(self, schema: pl.Schema, mapping: Mapping, table: AnalyticTable) -> None:
        self.schema, self.mapping, self.table = schema, mapping, table
        self._produced = set(schema.names())
        self._aggregates = [
            *assertion_aggregates(self._produced, table),
            *partition_null_counts(schema, table),
        ]

    def query(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.select(self._aggregates or [pl.len()])

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


def _checked(frame: pl.LazyFrame, mapping: Mapping, table: AnalyticTable) -> None:
    """Run the row-level checks on ``frame``; raise ``_MappingFailed`` if one fails."""
    try:
        checks = _RowChecks(frame.collect_schema(), mapping, table)
        counts = checks.query(frame).collect(engine="streaming").row(0, named=True)
    except pl.exceptions.PolarsError as exc:
        raise _MappingFailed(f"collect {mapping.id}: {_first_paragraph(exc)}") from exc
    checks.verdict(counts)


class _OnePass:
    """What a first or clean run computes in its staging query besides the fragments: the mapping's output
    partitions, the row checks and each file's partitions, so none needs another pass over the data."""

    def __init__(self, mapping: Mapping, table: AnalyticTable, out_dir: Path) -> None:
        self.mapping, self.table = mapping, table
        self.output = PartitionedOutput(table, mapping.id, out_dir)
        self.parts: dict[str, list[list[object]]] | None = None
        self._checks: _RowChecks | None = None
        self._counts: dict[str, object] = {}

    def queries(self, frame: pl.LazyFrame) -> list[pl.LazyFrame]:
        """Lazy sinks and queries over ``frame``: the evaluated rows plus the source path column."""
        rows = frame.drop(_PATH)
        schema = rows.collect_schema()
        self._checks = _RowChecks(schema, self.mapping, self.table)
        keys_ = [key for key in self.table.partition_keys if key in schema]
        return [
            self.output.sink(dedup(rows, self.table.dedup_keys)),
            # Over ``frame``, not ``rows``: this aggregate over the dropped-column frame made Polars 2.1 hold
            # the whole evaluated input in memory (1.6 GB instead of 0.9 GB at 500 MB of CSV, 40 % slower).
            self._checks.query(frame),
            frame.select(_PATH, *keys_).unique(maintain_order=True),
        ]

    def receive(self, results: list[pl.DataFrame], key_of_path: dict[str, str]) -> None:
        """Take the results of ``queries`` (after the output sink's)."""
        _, counts, distinct = results
        self._counts = counts.row(0, named=True)
        self.parts = parts_by_file(distinct, key_of_path)

    def verdict(self) -> None:
        assert self._checks is not None
        self._checks.verdict(self._counts)


def _first_paragraph(exc: Exception) -> str:
    return str(exc).split("\n\n", 1)[0]


def _upload(
    warehouse: ObjectStore, prefix: str, mapping: Mapping, parts: list[tuple[str, Path]]
) -> dict[str, str]:
    try:
        return publish(warehouse, prefix, parts)
    except PublishError as exc:
        raise _MappingFailed(f"upload {mapping.id}: {exc}") from exc


def _publish_all(
    warehouse: ObjectStore,
    prefix: str,
    mapping: Mapping,
    table: AnalyticTable,
    staged: list[tuple[ObjectInfo, Path]],
    tmp: str,
) -> _Published:
    """Rewrite every partition of the mapping from all fragments, then reap what it no longer produces."""
    output = fragments.scan_fragments([fragment for _, fragment in staged])
    _checked(output, mapping, table)
    try:
        parts = write_partitions(dedup(output, table.dedup_keys), table, mapping.id, Path(tmp) / "out")
    except PartitionError as exc:
        raise _MappingFailed(f"dedup {mapping.id}: {exc}") from exc
    except pl.exceptions.PolarsError as exc:
        raise _MappingFailed(f"collect {mapping.id}: {_first_paragraph(exc)}") from exc
    return _publish_parts(warehouse, prefix, mapping, staged, parts)


def _publish_parts(
    warehouse: ObjectStore,
    prefix: str,
    mapping: Mapping,
    staged: list[tuple[ObjectInfo, Path]],
    parts: list[tuple[str, Path]],
    *,
    parts_of: dict[str, list[list[object]]] | None = None,
) -> _Published:
    """Publish every partition written (and checked) from all fragments, then reap what the mapping no
    longer produces."""
    paths = [fragment for _, fragment in staged]
    written = _upload(warehouse, prefix, mapping, parts)
    rows = sum(pq.read_metadata(path).num_rows for _, path in parts)
    staged_rows = fragments.fragment_rows(paths)
    reaped = reap_stale(warehouse, prefix, mapping.id, set(written))
    schema = fragments.scan_fragments(paths[:1]).collect_schema()
    columns = {name: str(dtype) for name, dtype in schema.items()}
    return _Published(written, reaped, rows, staged_rows - rows, columns, parts_of)


def _publish_changed_partitions(
    warehouse: ObjectStore,
    prefix: str,
    mapping: Mapping,
    table: AnalyticTable,
    staged: list[tuple[ObjectInfo, Path]],
    manifest: Manifest,
    tmp: str,
) -> _Published | None:
    """Rewrite only the partitions fed by new, changed or removed files; None when that is not safe."""
    file_name = f"{mapping.id}.parquet"
    on_store = {
        info.key[len(prefix) :]: info.etag
        for info in warehouse.list(prefix)
        if info.key.rsplit("/", 1)[-1] == file_name
    }
    if on_store != manifest.published:
        return None
    keys_ = table.partition_keys
    current = {info.key: fragment for info, fragment in staged}
    changed = [
        k for k, f in current.items() if k not in manifest.files or manifest.files[k].fragment != f.name
    ]
    removed = [k for k in manifest.files if k not in current]
    if not changed and not removed:
        # A re-run over unchanged inputs rewrites everything, as Karet's did: its counters stay the same.
        return None
    if changed:
        _checked(fragments.scan_fragments([current[k] for k in changed]), mapping, table)
    parts_of = {k: manifest.files[k].parts for k in current if k not in changed}
    parts_of.update(fragment_parts({k: current[k] for k in changed}, keys_))
    affected: dict[str, list[object]] = {}
    for key in changed:
        affected.update((json.dumps(p), p) for p in parts_of[key])
    for key in [*changed, *removed]:
        if key in manifest.files:
            affected.update((json.dumps(p), p) for p in manifest.files[key].parts)

    out = Path(tmp) / "out"
    parts: list[tuple[str, Path]] = []
    emptied: list[str] = []
    rows = 0
    identities = {k: {json.dumps(p) for p in parts_of[k]} for k in current}
    for identity, values in affected.items():
        relative = (
            "/".join(f"{k}={render_segment(_python(v))}" for k, v in zip(keys_, values, strict=True))
            + f"/{file_name}"
        )
        feeding = [current[k] for k in current if identity in identities[k]]
        if not feeding:
            emptied.append(prefix + relative)
            continue
        try:
            frame = dedup(partition_frame(feeding, keys_, values), table.dedup_keys)
            local = out / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            frame.sink_parquet(local, compression="zstd", statistics=True, engine="streaming")
        except pl.exceptions.PolarsError as exc:
            raise _MappingFailed(f"collect {mapping.id}: {_first_paragraph(exc)}") from exc
        rows += pq.read_metadata(local).num_rows
        parts.append((relative, local))
    written = _upload(warehouse, prefix, mapping, parts)
    if emptied:
        warehouse.delete_many(emptied)
    schema = fragments.scan_fragments([staged[0][1]]).collect_schema()
    columns = {name: str(dtype) for name, dtype in schema.items()}
    published = {k: v for k, v in on_store.items() if prefix + k not in emptied}
    published.update((key[len(prefix) :], etag) for key, etag in written.items())
    return _Published(written, emptied, rows, 0, columns, parts_of, published)


def _python(value: object) -> object:
    if isinstance(value, dict):
        return dt.date.fromisoformat(str(value["date"]))
    return value


def _manifest_after(
    prefix: str, table: AnalyticTable, staged: list[tuple[ObjectInfo, Path]], outcome: _Published
) -> Manifest:
    """The record of what feeds and what holds the mapping's partitions after a successful publish."""
    # After a full publish the stale files are reaped, so the mapping's files are exactly those written.
    published = outcome.published
    if published is None:
        published = {key[len(prefix) :]: etag for key, etag in outcome.written.items()}
    parts = outcome.parts_of
    if parts is None:
        parts = fragment_parts({info.key: fragment for info, fragment in staged}, table.partition_keys)
    files = {info.key: FileEntry(fragment.name, parts[info.key]) for info, fragment in staged}
    return Manifest(table_prefix=prefix, files=files, published=published)


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


@dataclass(frozen=True)
class _Pending:
    info: ObjectInfo
    path: Path
    fragment: Path
    header: tuple[str, ...] | None


def _stage_files(
    staging: FragmentCache,
    files: list[ObjectInfo],
    inputs: RawInputs,
    source: SourceContainer,
    evaluation: _Evaluation,
    report: RunReport,
    *,
    one_pass: "_OnePass",
) -> tuple[list[tuple[ObjectInfo, Path]], bool]:
    """Evaluate the mapping over each raw file into a fragment; report failing files.

    When no file is cached and every CSV shares one header (a first or clean run), one query reads them all
    and feeds both the fragments and ``one_pass`` (the mapping's output from every file in listing order,
    its row checks and each file's partitions), so the input is parsed once and nothing needs a second pass;
    True says it was. Otherwise, or if that query fails, files are evaluated in batches of CSVs sharing a
    header (one query writes one fragment per file), because a query's fixed cost dwarfs the work on a small
    file; a batch that fails is redone file by file, so a bad file is still isolated and named.
    """
    staging.folder.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Path] = {}
    pending: list[_Pending] = []
    for info in files:
        fragment = staging.fragment(info)
        if staging.holds(fragment):
            staged[info.key] = fragment
            continue
        path = inputs.path(info.key)
        if path is None:
            continue
        inputs.parsed += 1
        header = None
        if source.format == "csv":
            try:
                header = csv_header(path, source.schema_)
            except FileReadError as exc:
                report.add_error(f"file {info.key}: {exc}")
                continue
        pending.append(_Pending(info, path, fragment, header))
    one_header = bool(pending) and pending[0].header is not None
    one_header = one_header and all(item.header == pending[0].header for item in pending)
    if not staged and one_header and _stage_batch(pending, source, evaluation, one_pass):
        return [(item.info, item.fragment) for item in pending], True
    for batch in _batches(pending):
        if len(batch) > 1 and _stage_batch(batch, source, evaluation):
            staged.update((item.info.key, item.fragment) for item in batch)
            continue
        for item in batch:
            if _stage_one(item, source, evaluation, report):
                staged[item.info.key] = item.fragment
    return [(info, staged[info.key]) for info in files if info.key in staged], False


def _batches(pending: list[_Pending]) -> list[list[_Pending]]:
    batches: list[list[_Pending]] = []
    size = 0
    for item in pending:
        current = batches[-1] if batches else None
        fits = (
            current is not None
            and item.header is not None
            and current[0].header == item.header
            and len(current) < BATCH_FILES
            and size + item.info.size <= BATCH_BYTES
        )
        if current is not None and fits:
            current.append(item)
            size += item.info.size
        else:
            batches.append([item])
            size = item.info.size
    return batches


def _stage_batch(
    batch: list[_Pending],
    source: SourceContainer,
    evaluation: _Evaluation,
    one_pass: "_OnePass | None" = None,
) -> bool:
    """Evaluate CSV files of one header in one query, one fragment each (and, optionally, what ``one_pass``
    computes from their evaluated rows); False if any file fails."""
    assert batch[0].header is not None
    out = batch[0].fragment.parent / f".batch-{batch[0].fragment.stem}"
    names = {str(item.path): f"{index}{fragments.SUFFIX}" for index, item in enumerate(batch)}
    scan = scan_csv_files([item.path for item in batch], source.schema_, batch[0].header, path_column=_PATH)
    frame = evaluation.apply(scan, keep=(_PATH,))
    try:
        per_file = fragments.sink_fragment(
            frame,
            pl.PartitionBy(
                out,
                key=_PATH,
                include_key=False,
                file_path_provider=lambda args: names[args.partition_keys.row(0)[0]],
                approximate_bytes_per_file=None,
            ),
        )
        if one_pass is None:
            per_file.collect(engine="streaming")
        else:
            results = pl.collect_all([per_file, *one_pass.queries(frame)], engine="streaming")
            one_pass.receive(results[1:], {str(item.path): item.info.key for item in batch})
        empty = pl.DataFrame(schema=frame.drop(_PATH).collect_schema())
    except (pl.exceptions.PolarsError, PartitionError):
        # PartitionError: a partition key value the one pass cannot name; the slow path reports it.
        shutil.rmtree(out, ignore_errors=True)
        return False
    for item in batch:
        written = out / names[str(item.path)]
        if not written.exists():  # every row of this file was filtered out
            fragments.write_fragment(empty, written)
        written.replace(item.fragment)
    shutil.rmtree(out, ignore_errors=True)
    return True


def _stage_one(item: _Pending, source: SourceContainer, evaluation: _Evaluation, report: RunReport) -> bool:
    partial = item.fragment.with_suffix(".partial")
    try:
        frame = read_source_file(item.path, source)
        fragments.sink_fragment(evaluation.apply(frame), partial).collect(engine="streaming")
    except FileReadError as exc:
        report.add_error(f"file {item.info.key}: {exc}")
        return False
    except pl.exceptions.PolarsError as exc:
        partial.unlink(missing_ok=True)
        report.add_error(f"file {item.info.key}: {describe_read_error(exc, item.path, source)}")
        return False
    # Renamed into place only once complete, so a crash never leaves a cached half fragment.
    partial.replace(item.fragment)
    return True
