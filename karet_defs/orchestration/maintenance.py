"""Maintenance jobs of one pipeline's Delta tables: compact, expire and restore, plus a daily schedule.

Every job is tagged ``karet/pipeline=<slug>``, so the queue's one-run-per-pipeline limit orders it with the
pipeline's runs, and its op holds the pipeline's write lock as a run does; it shows in the pipeline's job
history. The tables come from the ``pipeline.json`` read when the op runs, so a table added later needs no
reload. Each op records its per-table results (the DRLS shapes of ``engine.maintenance``) in a run tag the
API reads back, and as an observation on each table's asset for the Dagster UI.

The daily schedule (on by default) compacts, then expires, every written table. Its time is spread over
02:00–04:59 UTC by a hash of the slug, so many pipelines do not all start at once.
"""

import datetime as dt
import json
import zlib
from collections.abc import Callable
from typing import Any

import dagster as dg
from pydantic import Field

from karet_defs.catalog import read_pipeline
from karet_defs.engine.delta import (
    META_CONFIG_ETAG,
    META_JOB_ID,
    META_TRIGGER,
    TableVersionNotFound,
    location,
    open_table,
)
from karet_defs.engine.maintenance import compact_table, expire_versions, restore_version
from karet_defs.errors import (
    BucketNotFound,
    ConfigInvalid,
    ConfigParseFailed,
    ConfigReadFailed,
    KaretError,
    NotFound,
    PipelineConfigNotFound,
    StoreError,
    Unprocessable,
)
from karet_defs.orchestration.assets import table_key
from karet_defs.orchestration.jobs import (
    TAG_COMPACT_RESULT,
    TAG_EXPIRE_RESULT,
    TAG_MAINTENANCE,
    TAG_MAINTENANCE_ERROR,
    TAG_PIPELINE,
    TAG_RESTORE_RESULT,
    TAG_TRIGGER,
    dagster_name,
)
from karet_defs.orchestration.liveness import executing
from karet_defs.orchestration.resources import StoreResource
from karet_defs.settings import Settings
from karet_defs.store import keys
from karet_defs.store.base import Stores, TableLocation

COMPACT = "compact"
EXPIRE = "expire"
RESTORE = "restore"
MAINTENANCE = "maintenance"  # the scheduled job: compact, then expire
RESULT_TAGS = {COMPACT: TAG_COMPACT_RESULT, EXPIRE: TAG_EXPIRE_RESULT, RESTORE: TAG_RESTORE_RESULT}


class CompactConfig(dg.Config):
    table_ids: list[str] = Field(default=[], description="Tables to compact; empty: every written table.")
    strategy: str = Field(default="binpack", description="Compaction strategy; only `binpack`.")
    target_size: int | None = Field(
        default=None, description="Target file size in bytes (delta-rs: 100 MiB)."
    )


class ExpireConfig(dg.Config):
    table_ids: list[str] = Field(default=[], description="Tables to expire; empty: every written table.")
    retain_last: int | None = Field(default=None, description="Versions kept; default KARET_TABLE_VERSIONS.")
    older_than: str | None = Field(
        default=None, description="ISO 8601 time: only versions committed before it may be removed."
    )


class RestoreConfig(dg.Config):
    table_id: str = Field(description="The table to restore.")
    version: int = Field(description="The version whose rows the new version holds.")


def job_name(slug: str, operation: str) -> str:
    """``<dagster_name(slug)>_<operation>``: compact, expire, restore or maintenance."""
    return f"{dagster_name(slug)}_{operation}"


def maintenance_tags(slug: str, operation: str, *, trigger: str = "manual") -> dict[str, str]:
    return {TAG_PIPELINE: slug, TAG_TRIGGER: trigger, TAG_MAINTENANCE: operation}


def maintenance_run_config(slug: str, operation: str, config: dict[str, Any]) -> dict[str, Any]:
    """The run config of a single-operation job (compact, expire, restore)."""
    return {"ops": {_op_name(slug, operation): {"config": config}}}


def maintenance_result(instance: dg.DagsterInstance, run_id: str, operation: str) -> Any:
    """What a finished maintenance run recorded for ``operation``; its error, re-raised, when it failed."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(run_id)
    error = run.tags.get(TAG_MAINTENANCE_ERROR)
    if error is not None:
        body = json.loads(error)
        raise _ERRORS.get(body["error"], KaretError)(body["message"], code=body["error"])
    raw = run.tags.get(RESULT_TAGS[operation])
    if run.status != dg.DagsterRunStatus.SUCCESS or raw is None:
        raise KaretError(
            f"maintenance run {run_id} ended {run.status.value} without a result", code="maintenance_failed"
        )
    return json.loads(raw)


# Errors a maintenance op may record, by code, so the API answers them with their own status.
_ERRORS: dict[str, type[KaretError]] = {
    **{
        cls.code: cls
        for cls in (
            TableVersionNotFound,
            PipelineConfigNotFound,
            ConfigReadFailed,
            ConfigParseFailed,
            ConfigInvalid,
            StoreError,
            BucketNotFound,
        )
    },
    "table_not_found": NotFound,
    "invalid_strategy": Unprocessable,
    "invalid_retention": Unprocessable,
}


def build_maintenance_defs(slug: str) -> dg.Definitions:
    """The compact, expire and restore jobs, the scheduled compact-then-expire job and its schedule."""
    compact = _build_op(slug, COMPACT, _compact)
    expire = _build_op(slug, EXPIRE, _expire)
    restore = _build_op(slug, RESTORE, _restore)
    jobs = [
        _single_op_job(slug, COMPACT, compact, "Compact the small files of the pipeline's tables."),
        _single_op_job(
            slug, EXPIRE, expire, "Expire old versions of the pipeline's tables, vacuum their files."
        ),
        _single_op_job(
            slug, RESTORE, restore, "Commit a new version of a table holding an older version's rows."
        ),
    ]

    @dg.job(
        name=job_name(slug, MAINTENANCE),
        description=f"Daily maintenance of `{slug}`: compact every table, then expire its old versions.",
        run_tags=maintenance_tags(slug, MAINTENANCE),
        executor_def=dg.in_process_executor,
    )
    def _daily() -> None:
        expire(after=compact())

    hashed = zlib.crc32(slug.encode())
    schedule = dg.ScheduleDefinition(
        name=f"{dagster_name(slug)}_daily_maintenance",
        job=_daily,
        cron_schedule=f"{hashed % 60} {2 + (hashed // 60) % 3} * * *",
        execution_timezone="UTC",
        tags=maintenance_tags(slug, MAINTENANCE, trigger="schedule"),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Compact and expire the tables of `{slug}` once a day.",
    )
    return dg.Definitions(jobs=[*jobs, _daily], schedules=[schedule])


def _op_name(slug: str, operation: str) -> str:
    return f"{operation}_{dagster_name(slug)}"


def _single_op_job(slug: str, operation: str, op: dg.OpDefinition, description: str) -> dg.JobDefinition:
    return dg.JobDefinition(
        graph_def=dg.GraphDefinition(name=job_name(slug, operation), node_defs=[op]),
        description=f"{description} (`{slug}`)",
        run_tags=maintenance_tags(slug, operation),
        executor_def=dg.in_process_executor,
    )


# An operation on one table: (location, table id, commit metadata, op config, settings) -> its result.
_Action = Callable[[TableLocation, str, dict[str, str], Any, Settings], Any]


def _build_op(slug: str, operation: str, action: _Action) -> dg.OpDefinition:
    config_type = {COMPACT: CompactConfig, EXPIRE: ExpireConfig, RESTORE: RestoreConfig}[operation]

    @dg.op(
        name=_op_name(slug, operation),
        ins={"after": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        pool=f"karet_{dagster_name(slug)}",
        description=f"{operation.capitalize()} tables of `{slug}`",
    )
    # Dagster reads the op's config class from this annotation at run time; it is chosen per operation,
    # which no static type can say.
    def _maintain(
        context: dg.OpExecutionContext,
        config: config_type,  # type: ignore[valid-type]
        store: StoreResource,
    ) -> None:
        settings = store.settings()
        stores = store.stores()
        try:
            chosen, explicit = _tables(stores, slug, config)
            metadata = _commit_metadata(context, stores, slug)
            results = []
            with executing(context, settings, slug):
                for table_id in chosen:
                    where = location(stores.warehouse, slug, table_id)
                    if not explicit and open_table(where) is None:
                        context.log.info(
                            "table %s has not been written yet: nothing to %s", table_id, operation
                        )
                        continue
                    result = action(where, table_id, metadata, config, settings)
                    results.append(result)
                    context.log_event(
                        dg.AssetObservation(
                            asset_key=table_key(slug, table_id),
                            metadata={"maintenance": operation, "result": dg.MetadataValue.json(result)},
                        )
                    )
        except KaretError as exc:
            context.instance.add_run_tags(context.run_id, {TAG_MAINTENANCE_ERROR: json.dumps(exc.to_dict())})
            raise dg.Failure(
                description=f"{exc.code}: {exc.message}",
                metadata={"error": exc.code, "message": exc.message},
                allow_retries=False,
            ) from exc
        recorded = results[0] if operation == RESTORE else results
        context.instance.add_run_tags(context.run_id, {RESULT_TAGS[operation]: json.dumps(recorded)})

    return _maintain


def _tables(stores: Stores, slug: str, config: Any) -> tuple[list[str], bool]:
    """The tables an op works on (from the current config), and whether the caller named them."""
    known = [t.id for t in read_pipeline(stores, slug).analytic_tables]
    named = [config.table_id] if isinstance(config, RestoreConfig) else list(config.table_ids)
    for table_id in named:
        if table_id not in known:
            raise NotFound(f"pipeline `{slug}` has no table `{table_id}`", code="table_not_found")
    return (named or known), bool(named)


def _commit_metadata(context: dg.OpExecutionContext, stores: Stores, slug: str) -> dict[str, str]:
    config = stores.pipelines.head(keys.config_key(slug))
    return {
        META_JOB_ID: context.run_id,
        META_TRIGGER: context.run.tags.get(TAG_TRIGGER, "manual"),
        META_CONFIG_ETAG: config.etag if config is not None else "",
    }


def _compact(
    where: TableLocation, table_id: str, metadata: dict[str, str], config: Any, settings: Settings
) -> Any:
    return compact_table(where, metadata, strategy=config.strategy, target_size=config.target_size)


def _expire(
    where: TableLocation, table_id: str, metadata: dict[str, str], config: Any, settings: Settings
) -> Any:
    older_than = None
    if config.older_than:
        try:
            older_than = dt.datetime.fromisoformat(config.older_than)
        except ValueError as exc:
            raise Unprocessable(
                f"older_than is not an ISO 8601 time: {config.older_than!r}", code="invalid_retention"
            ) from exc
    retain_last = settings.table_versions if config.retain_last is None else config.retain_last
    return expire_versions(where, retain_last, older_than, metadata)


def _restore(
    where: TableLocation, table_id: str, metadata: dict[str, str], config: Any, settings: Settings
) -> Any:
    version = restore_version(where, config.version, metadata)
    return {"table": table_id, "restored_version": config.version, "version": version}
