"""Versions, health and maintenance of a pipeline's Delta tables (Karet E4 versions, DRLS health/operations).

Reads answer from the table's Delta log. Restore, compaction and expiry run as Dagster runs of the
pipeline's maintenance jobs (so they queue behind its runs and show in its job history); the answer comes
when the run has ended. A configured table that has not been written yet has no versions (an empty list);
its health, compaction and expiry answer 404 `table_not_found`, its restore 404 `version_not_found`.
"""

from typing import Annotated, Any

import dagster as dg
from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool

from karet_api.deps import InstanceDep, SettingsDep, StoreDep
from karet_api.roles import Role, require_role
from karet_api.routes.tables import _pipeline, _table
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.schemas.table_versions import (
    CompactRequest,
    ExpireRequest,
    TableHealth,
    TableOperation,
    TableRestored,
    TableVersion,
    TableVersionList,
)
from karet_api.services.runs import run_job_to_end
from karet_defs.engine.delta import location
from karet_defs.engine.maintenance import existing_table, require_version, table_health, table_versions
from karet_defs.errors import KaretError
from karet_defs.orchestration.maintenance import (
    COMPACT,
    EXPIRE,
    RESTORE,
    job_name,
    maintenance_result,
    maintenance_run_config,
    maintenance_tags,
)
from karet_defs.settings import Settings
from karet_defs.slugs import sanitise_slug
from karet_defs.store.base import Stores, TableLocation

router = APIRouter(prefix="/api", tags=["table versions"], route_class=CappedJsonRoute)

_READ_ERRORS = (
    (400, "config_parse_failed: the stored config is not a pipeline config"),
    (401, "not signed in"),
    (422, "invalid_slug"),
    *STORE_ERRORS,
)
_RUN_ERRORS = (
    (500, "maintenance_failed: the Dagster run failed; dagster_unavailable: the webserver refused the run"),
)


@router.get(
    "/p/{slug}/tables/{table_id}/versions",
    response_model=TableVersionList,
    responses=error_responses(*_READ_ERRORS, (404, "pipeline_not_found or table_not_found")),
)
def list_versions(slug: str, table_id: str, stores: StoreDep) -> TableVersionList:
    """Every readable version of the table, newest first (empty before its first run)."""
    where = _location(stores, slug, table_id)
    return TableVersionList(versions=[TableVersion(**v) for v in table_versions(where)])


@router.get(
    "/p/{slug}/tables/{table_id}/health",
    response_model=TableHealth,
    responses=error_responses(
        *_READ_ERRORS, (404, "pipeline_not_found, or table_not_found (also when not written yet)")
    ),
)
def health(slug: str, table_id: str, stores: StoreDep, settings: SettingsDep) -> TableHealth:
    """DRLS' health report of the current version: files, sizes, versions and what to do about them."""
    where = _location(stores, slug, table_id)
    return TableHealth(**table_health(where, table_id, retain_last=settings.table_versions))


@router.post(
    "/p/{slug}/tables/{table_id}/versions/{n}/restore",
    response_model=TableRestored,
    dependencies=[Depends(require_role(Role.lead))],
    responses=error_responses(
        *_READ_ERRORS,
        (404, "pipeline_not_found, table_not_found, or version_not_found: no such version (or expired)"),
        *_RUN_ERRORS,
    ),
)
async def restore(
    slug: str,
    table_id: str,
    n: Annotated[int, Path(description="The version whose rows the new version holds")],
    stores: StoreDep,
    instance: InstanceDep,
    settings: SettingsDep,
) -> TableRestored:
    """Commit a new version holding version `n`'s rows, as a Dagster run; answer with the new version."""
    slug = sanitise_slug(slug)
    where = await run_in_threadpool(_location, stores, slug, table_id)
    await run_in_threadpool(require_version, where, n)  # unknown or expired: 404 before any run starts
    run_id, result = await _run(instance, settings, slug, RESTORE, {"table_id": table_id, "version": n})
    return TableRestored(table=table_id, restored_version=n, version=int(result["version"]), job_id=run_id)


@router.post(
    "/p/{slug}/tables/{table_id}/compact",
    response_model=TableOperation,
    dependencies=[Depends(require_role(Role.lead))],
    responses=error_responses(
        *_READ_ERRORS,
        (404, "pipeline_not_found, or table_not_found (also when not written yet)"),
        *_RUN_ERRORS,
    ),
)
async def compact(
    slug: str,
    table_id: str,
    stores: StoreDep,
    instance: InstanceDep,
    settings: SettingsDep,
    request: CompactRequest | None = None,
) -> TableOperation:
    """Bin-pack the table's small files, as a Dagster run; no row changes. Only `binpack` is known."""
    request = request or CompactRequest()
    slug = sanitise_slug(slug)
    await run_in_threadpool(_written, stores, slug, table_id)
    config: dict[str, Any] = {"table_ids": [table_id], "strategy": request.strategy}
    if request.options.target_size is not None:
        config["target_size"] = request.options.target_size
    run_id, results = await _run(instance, settings, slug, COMPACT, config)
    return TableOperation(**_only(results), job_id=run_id)


@router.post(
    "/p/{slug}/tables/{table_id}/expire",
    response_model=TableOperation,
    dependencies=[Depends(require_role(Role.lead))],
    responses=error_responses(
        *_READ_ERRORS,
        (404, "pipeline_not_found, or table_not_found (also when not written yet)"),
        *_RUN_ERRORS,
    ),
)
async def expire(
    slug: str,
    table_id: str,
    stores: StoreDep,
    instance: InstanceDep,
    settings: SettingsDep,
    request: ExpireRequest | None = None,
) -> TableOperation:
    """Remove versions before the last `retain_last` (and before `older_than`), vacuuming their files."""
    request = request or ExpireRequest()
    slug = sanitise_slug(slug)
    await run_in_threadpool(_written, stores, slug, table_id)
    config: dict[str, Any] = {"table_ids": [table_id]}
    if request.retain_last is not None:
        config["retain_last"] = request.retain_last
    if request.older_than is not None:
        config["older_than"] = request.older_than.isoformat()
    run_id, results = await _run(instance, settings, slug, EXPIRE, config)
    return TableOperation(**_only(results), job_id=run_id)


def _location(stores: Stores, slug: str, table_id: str) -> TableLocation:
    """Where a configured table lives (404 for an unknown pipeline or table)."""
    slug = sanitise_slug(slug)
    table = _table(_pipeline(stores, slug), slug, table_id)
    return location(stores.warehouse, slug, table.id)


def _written(stores: Stores, slug: str, table_id: str) -> None:
    existing_table(_location(stores, slug, table_id), table_id)


async def _run(
    instance: dg.DagsterInstance, settings: Settings, slug: str, operation: str, config: dict[str, Any]
) -> tuple[str, Any]:
    """Execute one maintenance job to its end; its run id and the result it recorded (or its error)."""
    run_id = await run_job_to_end(
        instance,
        settings,
        job_name(slug, operation),
        run_config=maintenance_run_config(slug, operation, config),
        tags=maintenance_tags(slug, operation, trigger="api"),
    )
    return run_id, await run_in_threadpool(maintenance_result, instance, run_id, operation)


def _only(results: list[dict[str, Any]]) -> dict[str, Any]:
    if len(results) != 1:
        raise KaretError(
            f"expected one table's result, the run recorded {len(results)}", code="maintenance_failed"
        )
    return results[0]
