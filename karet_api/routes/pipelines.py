"""Pipelines as wholes: list, create from a template, delete, and rename (REFERENCE §4.3)."""

from fastapi import APIRouter

from karet_api.deps import InstanceDep, ReloaderDep, SettingsDep, StoreDep
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.schemas.pipelines import (
    PipelineCreate,
    PipelineCreated,
    PipelineDeleted,
    PipelineList,
    PipelineRename,
    PipelineRenamed,
)
from karet_api.services import pipelines
from karet_defs.catalog import list_slugs
from karet_defs.slugs import sanitise_slug

router = APIRouter(prefix="/api", tags=["pipelines"], route_class=CappedJsonRoute)


@router.get(
    "/pipelines",
    response_model=PipelineList,
    responses=error_responses((401, "not signed in"), *STORE_ERRORS),
)
def list_pipelines(stores: StoreDep) -> PipelineList:
    """Every pipeline with a `pipeline.json`, in key order."""
    return PipelineList(pipelines=list(dict.fromkeys(list_slugs(stores))))


@router.post(
    "/pipelines",
    response_model=PipelineCreated,
    responses=error_responses(
        (401, "not signed in"),
        (409, "already_exists: the slug has a pipeline.json (`pipeline` names it)"),
        (422, "invalid_slug or invalid_template"),
        *STORE_ERRORS,
    ),
)
def create_pipeline(request: PipelineCreate, stores: StoreDep, reloader: ReloaderDep) -> PipelineCreated:
    """Create a pipeline from a template; of concurrent creates of one slug exactly one succeeds."""
    slug = sanitise_slug(request.slug)
    pipelines.create_pipeline(stores, slug, request.template)
    reloader.request()
    return PipelineCreated(pipeline=slug)


@router.delete(
    "/pipelines/{slug}",
    response_model=PipelineDeleted,
    responses=error_responses(
        (401, "not signed in"),
        (404, "not_found: no object under `pipelines/<slug>/`"),
        (409, "pipeline_busy: a run of the pipeline is queued or running"),
        (422, "invalid_slug"),
        *STORE_ERRORS,
    ),
)
def delete_pipeline(
    slug: str, stores: StoreDep, reloader: ReloaderDep, instance: InstanceDep, settings: SettingsDep
) -> PipelineDeleted:
    """Delete every object under `pipelines/<slug>/` in the three buckets."""
    slug = sanitise_slug(slug)
    pipelines.ensure_idle(instance, slug, orphan_after=settings.orphan_after_seconds)
    deleted = pipelines.delete_pipeline(stores, slug)
    reloader.request()
    return PipelineDeleted(pipeline=slug, deleted=deleted)


@router.patch(
    "/pipelines/{slug}",
    response_model=PipelineRenamed,
    response_model_by_alias=True,
    responses=error_responses(
        (401, "not signed in"),
        (404, "not_found: no object under `pipelines/<slug>/`"),
        (409, "already_exists: the new slug has a pipeline.json; pipeline_busy: a run is queued or running"),
        (422, "invalid_slug (either side) or unchanged"),
        *STORE_ERRORS,
    ),
)
def rename_pipeline(
    slug: str,
    request: PipelineRename,
    stores: StoreDep,
    reloader: ReloaderDep,
    instance: InstanceDep,
    settings: SettingsDep,
) -> PipelineRenamed:
    """Rename: copy every object to the new prefix (config last, prefixes rewritten), then delete the old."""
    old, new = sanitise_slug(slug), sanitise_slug(request.new_slug)
    pipelines.ensure_idle(instance, old, orphan_after=settings.orphan_after_seconds)
    moved = pipelines.rename_pipeline(stores, old, new)
    reloader.request()
    return PipelineRenamed(from_=old, to=new, moved=moved)
