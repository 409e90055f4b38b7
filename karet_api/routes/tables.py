"""Analytic tables of a pipeline: their schema and Dagster facts, and the rows of one version streamed as
JSON."""

from collections.abc import Iterator
from typing import Annotated

import dagster as dg
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from karet_api.deps import InstanceDep, StoreDep
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import error_responses
from karet_api.schemas.tables import TableInfo, TableList
from karet_api.services.jobs import iso_utc
from karet_defs.config.models import AnalyticTable, Pipeline
from karet_defs.config.validate import parse_pipeline
from karet_defs.engine.stats import table_stats
from karet_defs.engine.tables import iter_rows_json
from karet_defs.errors import ConfigParseFailed, ConfigSchemaError, NotFound, ObjectNotFound, PipelineNotFound
from karet_defs.slugs import sanitise_slug
from karet_defs.store import keys
from karet_defs.store.base import Stores

router = APIRouter(prefix="/api", tags=["tables"], route_class=CappedJsonRoute)


def _pipeline(stores: Stores, slug: str) -> Pipeline:
    # Tables are listed even when the config fails validation, as long as it parses.
    try:
        raw = stores.pipelines.get(keys.config_key(slug))
    except ObjectNotFound as exc:
        raise PipelineNotFound(f"no pipeline config for `{slug}`") from exc
    try:
        return parse_pipeline(raw)
    except ConfigSchemaError as exc:
        raise ConfigParseFailed(exc.message, details=exc.details) from exc


def _table(pipeline: Pipeline, slug: str, table_id: str) -> AnalyticTable:
    table = pipeline.table(table_id)
    if table is None:
        raise NotFound(f"pipeline `{slug}` has no table `{table_id}`", code="table_not_found")
    return table


@router.get(
    "/p/{slug}/tables",
    response_model=TableList,
    response_model_by_alias=True,
    responses=error_responses(
        (400, "config_parse_failed: the stored config is not a pipeline config"),
        (401, "not signed in"),
        (404, "pipeline_not_found"),
        (422, "invalid_slug"),
        (503, "s3_error: the store or a table's Delta log cannot be read"),
    ),
)
def list_tables(slug: str, stores: StoreDep, instance: InstanceDep) -> TableList:
    """Every analytic table in config order, with the data files of its current version and its latest
    materialization's facts."""
    slug = sanitise_slug(slug)
    pipeline = _pipeline(stores, slug)
    tables = []
    for table in pipeline.analytic_tables:
        file_count = table_stats(stores.warehouse, slug, table.id).file_count
        event = instance.get_latest_materialization_event(dg.AssetKey([slug, table.id]))
        metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
        tables.append(
            TableInfo(
                id=table.id,
                name=table.name,
                schema=[c.model_dump(exclude_none=True) for c in table.schema_],
                fileCount=file_count,
                rowCount=_value(metadata.get("dagster/row_count")),
                bytes=_value(metadata.get("bytes")),
                lastMaterialization=iso_utc(event.timestamp) if event else None,
                lastRunId=event.run_id if event else None,
            )
        )
    return TableList(tables=tables)


@router.get(
    "/p/{slug}/tables/{table_id}/rows",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object", "properties": {"rows": {}}}}}},
        **error_responses(
            (400, "config_parse_failed: the stored config is not a pipeline config"),
            (401, "not signed in"),
            (404, "pipeline_not_found, table_not_found, or version_not_found: no such version (or expired)"),
            (422, "invalid_slug"),
            (503, "s3_error: the store or the table's Delta log cannot be read"),
        ),
    },
)
def table_rows(
    slug: str,
    table_id: str,
    stores: StoreDep,
    limit: Annotated[int | None, Query(ge=0)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    version: Annotated[
        int | None, Query(ge=0, description="A table version to read (time travel); default the current one")
    ] = None,
    include_hidden: Annotated[
        bool,
        Query(description="Also show the hidden columns `_karet_source` (raw file) and `_karet_mapping`"),
    ] = False,
) -> StreamingResponse:
    """`{"rows": [...]}` of one table version streamed, Hive partition columns restored; `limit`/`offset`
    page through it."""
    slug = sanitise_slug(slug)
    table = _table(_pipeline(stores, slug), slug, table_id)
    chunks = iter_rows_json(
        stores.warehouse,
        slug,
        table,
        limit=limit,
        offset=offset,
        version=version,
        include_hidden=include_hidden,
    )
    first = next(chunks)  # read the log before answering, so a missing version is still a clean error
    return StreamingResponse(_prepend(first, chunks), media_type="application/json")


def _prepend(first: bytes | memoryview, rest: Iterator[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    yield first
    yield from rest


def _value(entry: object) -> int | None:
    value = getattr(entry, "value", None)
    return int(value) if isinstance(value, int | float) else None
