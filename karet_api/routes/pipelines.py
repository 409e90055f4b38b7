"""Pipelines as wholes: list, create from a template, delete, rename (REFERENCE §4.3), promotion mode."""

from fastapi import APIRouter

from karet_api.deps import InstanceDep, ReloaderDep, SettingsDep, StoreDep
from karet_api.roles import Auditor, Engineer, Role, require_role
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.schemas.pipelines import (
    PipelineCreate,
    PipelineCreated,
    PipelineDeleted,
    PipelineList,
    PipelineUpdate,
    PipelineUpdated,
)
from karet_api.services import pipelines
from karet_api.services.accounts import visibility
from karet_defs.catalog import list_slugs
from karet_defs.errors import MissingFields
from karet_defs.history import versions
from karet_defs.slugs import sanitise_slug

router = APIRouter(prefix="/api", tags=["pipelines"], route_class=CappedJsonRoute)


@router.get(
    "/pipelines",
    response_model=PipelineList,
    responses=error_responses((401, "not signed in"), *STORE_ERRORS),
)
def list_pipelines(stores: StoreDep, actor: Auditor) -> PipelineList:
    """Every pipeline with a `pipeline.json`, in key order."""
    return PipelineList(pipelines=visibility.visible_slugs(stores, actor, dict.fromkeys(list_slugs(stores))))


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
def create_pipeline(
    request: PipelineCreate, stores: StoreDep, reloader: ReloaderDep, actor: Engineer
) -> PipelineCreated:
    """Create a pipeline from a template (its config version 1); of concurrent creates of one slug exactly
    one succeeds."""
    slug = sanitise_slug(request.slug)
    pipelines.create_pipeline(stores, slug, request.template, author=actor.name)
    visibility.claim(stores, actor, slug)
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
    response_model=PipelineUpdated,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    responses=error_responses(
        (401, "not signed in"),
        (403, "forbidden: changing `promotion` needs the lead role"),
        (404, "not_found: no object under `pipelines/<slug>/`; pipeline_config_not_found (promotion)"),
        (409, "already_exists: the new slug has a pipeline.json; pipeline_busy: a run is queued or running"),
        (422, "invalid_slug (either side), unchanged, or missing_fields (neither `newSlug` nor `promotion`)"),
        *STORE_ERRORS,
    ),
)
def update_pipeline(
    slug: str,
    request: PipelineUpdate,
    stores: StoreDep,
    reloader: ReloaderDep,
    instance: InstanceDep,
    settings: SettingsDep,
    actor: Engineer,
) -> PipelineUpdated:
    """Switch the promotion mode (`direct` | `reviewed`), and/or rename: copy every object to the new prefix
    (config last, prefixes rewritten, history carried), then delete the old."""
    old = sanitise_slug(slug)
    if request.new_slug is None and request.promotion is None:
        raise MissingFields("give `newSlug`, `promotion` or both", extra={"fields": ["newSlug", "promotion"]})
    updated = PipelineUpdated()
    if request.promotion is not None:
        require_role(Role.lead)(actor)
        updated.promotion = versions.set_promotion(stores, old, request.promotion)
        updated.pipeline = old
    if request.new_slug is not None:
        new = sanitise_slug(request.new_slug)
        pipelines.ensure_idle(instance, old, orphan_after=settings.orphan_after_seconds)
        updated.moved = pipelines.rename_pipeline(stores, old, new)
        updated.from_, updated.to = old, new
        updated.pipeline = new if updated.promotion is not None else None
        reloader.request()
    return updated
