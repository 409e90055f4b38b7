"""The assets of one pipeline: external specs for sources and lookups, one multi-asset for its tables.

Structure comes from the config read when the code location loads; the body re-reads ``pipeline.json`` when
it runs, so an edit of expressions or lookups takes effect on the next run without a reload. The engine runs
under the pipeline's exclusive lock on this host, so two runs of one pipeline never write at the same time.
"""

import re
from collections.abc import Iterator, Sequence

import dagster as dg

from karet_defs.catalog import read_pipeline
from karet_defs.config.models import AnalyticTable, Dimension, FileRows, Pipeline
from karet_defs.config.walk import dimension_ids, lookup_ids, mapping_roots
from karet_defs.engine.delta import META_CONFIG_ETAG, META_JOB_ID, META_TRIGGER
from karet_defs.engine.report import RunReport, TableReport
from karet_defs.engine.run import run_pipeline
from karet_defs.engine.stats import TableStats, table_stats
from karet_defs.errors import KaretError
from karet_defs.history.versions import config_version_of
from karet_defs.orchestration.describe import describe_assertions, describe_column_source
from karet_defs.orchestration.jobs import (
    FILE_ERRORS_KEPT,
    TAG_CLEAN_RUN,
    TAG_CONFIG_VERSION,
    TAG_PIPELINE,
    TAG_TRIGGER,
    dagster_name,
    nothing_published,
    run_failure,
    run_tags,
    summary_tags,
)
from karet_defs.orchestration.liveness import executing
from karet_defs.orchestration.previews import preview_metadata
from karet_defs.orchestration.progress import build_progress_tracker
from karet_defs.orchestration.resources import StoreResource
from karet_defs.store import keys
from karet_defs.store.base import Stores
from karet_defs.store.factory import build_stores

SCHEMA_CHECK = "schema_matches"
QUARANTINE_CHECK = "no_quarantined_files"
_POLARS_TYPES = {
    "date": "Date",
    "int64": "Int64",
    "float64": "Float64",
    "number": "Float64",
    "bool": "Boolean",
    "string": "String",
}


class RunOptions(dg.Config):
    clean_run: bool = False


def source_key(slug: str, source_id: str) -> dg.AssetKey:
    return dg.AssetKey([slug, "raw", source_id])


def lookup_key(slug: str, lookup_id: str) -> dg.AssetKey:
    return dg.AssetKey([slug, "lookup", lookup_id])


def dimension_key(slug: str, dimension_id: str) -> dg.AssetKey:
    return dg.AssetKey([slug, "dimension", dimension_id])


def table_key(slug: str, table_id: str) -> dg.AssetKey:
    return dg.AssetKey([slug, table_id])


def assertion_check_name(column: str) -> str:
    return "assertions_" + re.sub(r"[^A-Za-z0-9_]", "_", column)


def build_external_specs(pipeline: Pipeline, slug: str, owners: Sequence[str] = ()) -> list[dg.AssetSpec]:
    """Sources and lookups as external assets, so lineage shows where every table comes from."""
    read = {m.source_container_id for m in pipeline.mappings}
    specs = [
        dg.AssetSpec(
            source_key(slug, s.id),
            description=f"{s.name or s.id}: raw {s.format} files under `{s.resolved_prefix(slug)}`"
            + ("" if s.id in read else ". No mapping reads these files yet: add one that feeds a table."),
            group_name=dagster_name(slug),
            kinds={s.format},
            metadata={"dagster/uri": s.resolved_prefix(slug), "path_prefix": s.path_prefix},
            owners=owners,
        )
        for s in pipeline.source_containers
    ]
    specs += [
        dg.AssetSpec(
            lookup_key(slug, lookup.id),
            description=f"Lookup {lookup.name or lookup.id} ({lookup.match}, {len(lookup.rows)} rows)",
            group_name=dagster_name(slug),
            metadata={"rows": len(lookup.rows), "children": len(lookup.children)},
            owners=owners,
        )
        for lookup in pipeline.lookup_mappings
    ]
    specs += [_dimension_spec(slug, d, owners) for d in pipeline.dimensions]
    return specs


def _dimension_spec(slug: str, dimension: Dimension, owners: Sequence[str]) -> dg.AssetSpec:
    rows = dimension.rows
    if isinstance(rows, FileRows):
        # A CSV under this prefix changes the tables using the dimension; the raw-files sensor watches it.
        where = rows.resolved_prefix(slug)
        description = (
            f"Dimension {dimension.name or dimension.id} ({dimension.match}): rows of the CSV files under "
            f"`{where}`"
        )
        metadata: dict[str, str | int] = {
            "dagster/uri": where,
            "path_prefix": rows.path_prefix,
            "key": rows.key,
        }
    else:
        description = f"Dimension {dimension.name or dimension.id} ({dimension.match}, {len(rows.rows)} rows)"
        metadata = {"rows": len(rows.rows)}
    return dg.AssetSpec(
        dimension_key(slug, dimension.id),
        description=description,
        group_name=dagster_name(slug),
        kinds={"csv"} if isinstance(rows, FileRows) else None,
        metadata={**metadata, "values": rows.values},
        owners=owners,
    )


def _table_spec(pipeline: Pipeline, slug: str, table: AnalyticTable, owners: Sequence[str]) -> dg.AssetSpec:
    deps: dict[dg.AssetKey, None] = {}
    for mapping in pipeline.mappings_of_table(table.id):
        if pipeline.source(mapping.source_container_id) is not None:
            deps[source_key(slug, mapping.source_container_id)] = None
        for lookup_id in lookup_ids(mapping):
            deps[lookup_key(slug, lookup_id)] = None
        source = pipeline.source(mapping.source_container_id)
        for dimension_id in dimension_ids(*mapping_roots(mapping), source.record_filter if source else None):
            deps[dimension_key(slug, dimension_id)] = None
    rollup = pipeline.rollup_of_table(table.id)
    if rollup is not None:
        # Another spec of this multi-asset: the engine commits the source before it aggregates it.
        deps[table_key(slug, rollup.source_table_id)] = None
        for aggregate in rollup.aggregates:
            for dimension_id in dimension_ids(aggregate.where):
                deps[dimension_key(slug, dimension_id)] = None
    return dg.AssetSpec(
        table_key(slug, table.id),
        description=f"{table.name or table.id}: Delta table at `{keys.table_prefix(slug, table.id)}`",
        deps=list(deps),
        group_name=dagster_name(slug),
        kinds={"polars", "delta"},
        skippable=True,
        metadata={
            "dagster/column_schema": _declared_schema(pipeline, table),
            "dagster/uri": keys.table_prefix(slug, table.id),
            "partition_keys": table.partition_keys,
        },
        tags={"karet/pipeline": slug},
        owners=owners,
    )


def _declared_schema(pipeline: Pipeline, table: AnalyticTable) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type,
                description=describe_column_source(pipeline, table.id, c.name),
                constraints=dg.TableColumnConstraints(nullable=c.nullable is not False),
            )
            for c in table.schema_
        ]
    )


def _check_specs(slug: str, table: AnalyticTable) -> list[dg.AssetCheckSpec]:
    key = table_key(slug, table.id)
    specs = [
        dg.AssetCheckSpec(SCHEMA_CHECK, asset=key, description="Written columns have the declared types")
    ]
    specs.append(
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=key,
            description="No raw file was held back for rows failing an assertion or a partition key",
        )
    )
    specs += [
        dg.AssetCheckSpec(
            assertion_check_name(c.name),
            asset=key,
            description=describe_assertions(c),
        )
        for c in table.schema_
        if c.assertions is not None
    ]
    return specs


def build_pipeline_assets(pipeline: Pipeline, slug: str, owners: Sequence[str] = ()) -> dg.AssetsDefinition:
    """One multi-asset producing every analytic table of the pipeline in a single engine run."""
    tables = list(pipeline.analytic_tables)

    @dg.multi_asset(
        name=f"run_{dagster_name(slug)}",
        specs=[_table_spec(pipeline, slug, t, owners) for t in tables],
        check_specs=[spec for t in tables for spec in _check_specs(slug, t)],
        can_subset=True,
        pool=f"karet_{dagster_name(slug)}",
        description=f"Run pipeline `{slug}` with the Polars engine",
    )
    def _run(
        context: dg.AssetExecutionContext, config: RunOptions, store: StoreResource
    ) -> Iterator[dg.MaterializeResult[None] | dg.AssetCheckResult]:
        selected = {k.path[-1] for k in context.selected_asset_keys}
        clean_run = config.clean_run or context.run.tags.get(TAG_CLEAN_RUN) == "true"
        if TAG_PIPELINE not in context.run.tags:
            # Runs launched from an asset page run as __ASSET_JOB without the job's tags; tag them so the
            # pipeline's job history finds them too.
            context.instance.add_run_tags(context.run_id, run_tags(slug, clean_run=clean_run))
        settings = store.settings()
        stores = build_stores(settings)
        progress = build_progress_tracker(context, {t: table_key(slug, t) for t in selected})
        try:
            with executing(context, settings, slug):
                # The column descriptions name the expressions this run uses, not those of the load.
                running = read_pipeline(stores, slug)
                config_version = config_version_of(stores, slug)
                if config_version is not None:
                    context.instance.add_run_tags(context.run_id, {TAG_CONFIG_VERSION: str(config_version)})
                report = run_pipeline(
                    stores,
                    slug,
                    clean_run=clean_run,
                    table_ids=selected,
                    log=context.log,
                    commit_info=_commit_info(context, stores, slug),
                    progress=progress,
                )
        except KaretError as exc:
            raise run_failure(exc) from exc
        context.instance.add_run_tags(context.run_id, summary_tags(report))
        progress.phase("checks")
        if report.errors and all(report.tables[t].version is None for t in selected):
            # Errors and not one table published: a green run here would hide that nothing got through.
            raise dg.Failure(
                description=nothing_published(report.errors),
                metadata={"errors": report.errors, "file_errors": [e.to_dict() for e in report.file_errors]},
                allow_retries=False,
            )
        preview = preview_metadata(context, stores, slug, settings)
        for table in tables:
            if table.id not in selected:
                continue
            table_report = report.tables[table.id]
            if table_report.version is None:
                # The table's data is what the last materialization describes: recording another would
                # claim a change that did not happen (its checks still report what this run saw).
                context.log.info(f"{table.id}: nothing new to publish, no materialization recorded")
            else:
                try:
                    stats = table_stats(stores.warehouse, slug, table.id)
                except KaretError as exc:  # the store failed after the engine: the run's cause, with its code
                    raise run_failure(exc) from exc
                yield dg.MaterializeResult(
                    asset_key=table_key(slug, table.id),
                    metadata={
                        **_table_metadata(
                            slug, running, running.table(table.id) or table, table_report, report, stats
                        ),
                        **_version_metadata(config_version),
                        **preview,
                    },
                )
            yield from _check_results(slug, table, table_report, report)
        progress.finish()

    return _run


def _commit_info(context: dg.AssetExecutionContext, stores: Stores, slug: str) -> dict[str, str]:
    """What each Delta commit of the run records: the run, its trigger and the config it ran."""
    config = stores.pipelines.head(keys.config_key(slug))
    return {
        META_JOB_ID: context.run_id,
        META_TRIGGER: context.run.tags.get(TAG_TRIGGER, "manual"),
        META_CONFIG_ETAG: config.etag if config is not None else "",
    }


def _version_metadata(config_version: int | None) -> dict[str, dg.MetadataValue]:
    # Which config version produced the table: a run of a config written outside Karet has none.
    return {} if config_version is None else {"config_version": dg.MetadataValue.int(config_version)}


def _table_metadata(
    slug: str,
    pipeline: Pipeline,
    table: AnalyticTable,
    table_report: TableReport,
    report: RunReport,
    stats: TableStats,
) -> dict[str, dg.MetadataValue | dg.TableSchema]:
    # Lists are sorted so two runs that did the same work show the same metadata, whatever the order the
    # engine finished its files and partitions in.
    version = {} if stats.version is None else {"delta_version": dg.MetadataValue.int(stats.version)}
    return {
        **version,
        "dagster/row_count": dg.MetadataValue.int(stats.row_count),
        "dagster/column_schema": _declared_schema(pipeline, table),
        "dagster/uri": dg.MetadataValue.path(keys.table_prefix(slug, table.id)),
        "partitions_written": dg.MetadataValue.int(len(table_report.partitions)),
        "partitions": dg.MetadataValue.json(sorted(table_report.partitions, key=_natural)),
        "files_processed": dg.MetadataValue.int(report.files_processed),
        "files_parsed": dg.MetadataValue.int(report.files_parsed),
        "rows_written": dg.MetadataValue.int(table_report.rows_written),
        "rows_removed": dg.MetadataValue.int(table_report.rows_removed),
        "rows_deduped": dg.MetadataValue.int(table_report.rows_deduped),
        "file_count": dg.MetadataValue.int(stats.file_count),
        "bytes": dg.MetadataValue.int(stats.bytes),
        "errors": dg.MetadataValue.json(sorted(report.errors)),
        "quarantined_files": dg.MetadataValue.json(sorted(table_report.quarantined)),
        "file_errors": dg.MetadataValue.json(_file_errors_of(table_report, report)),
    }


def _file_errors_of(table_report: TableReport, report: RunReport) -> list[dict[str, object]]:
    held = set(table_report.quarantined)
    rows = sorted((e for e in report.file_errors if e.file in held), key=lambda e: (e.file, e.line, e.column))
    return [e.to_dict() for e in rows[:FILE_ERRORS_KEPT]]


def _natural(text: str) -> list[str | int]:
    """Sort key reading digit runs as numbers: ``month=9`` before ``month=10``."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", text))]


def _check_results(
    slug: str, table: AnalyticTable, table_report: TableReport, report: RunReport
) -> Iterator[dg.AssetCheckResult]:
    key = table_key(slug, table.id)
    mismatched = {
        name: dtype
        for name, dtype in table_report.columns.items()
        if (declared := table.column(name)) is None or _POLARS_TYPES.get(declared.type, "String") != dtype
    }
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name=SCHEMA_CHECK,
        passed=not mismatched,
        metadata={"written_columns": table_report.columns, "mismatched": mismatched},
        description="no data written in this run" if not table_report.columns else None,
    )
    held = sorted(table_report.quarantined)
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name=QUARANTINE_CHECK,
        passed=not held,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_files": held, "file_errors": _file_errors_of(table_report, report)},
        description=f"{len(held)} raw file(s) held back: {', '.join(held[:5])}" if held else None,
    )
    for column in table.schema_:
        if column.assertions is None:
            continue
        violations = [str(v) for v in table_report.violations if v.column == column.name]
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=assertion_check_name(column.name),
            passed=not violations,
            metadata={"violations": violations},
            description="; ".join(violations) or None,
        )
