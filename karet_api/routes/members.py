"""Routes of ``/api/p/<slug>/members``: who may see a pipeline besides leads and admins (Karet E4)."""

from fastapi import APIRouter

from karet_api.deps import StoreDep
from karet_api.roles import Auditor, Engineer, Lead
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.accounts import Members, MembersUpdate
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.services.accounts import visibility
from karet_defs.errors import PipelineNotFound
from karet_defs.slugs import sanitise_slug
from karet_defs.store import keys
from karet_defs.store.base import Stores

router = APIRouter(prefix="/api/p", tags=["members"], route_class=CappedJsonRoute)

_ERRORS = ((401, "not signed in"), (404, "pipeline_not_found (or hidden from the caller)"), *STORE_ERRORS)


@router.get("/{slug}/members", response_model=Members, responses=error_responses(*_ERRORS))
def read_members(slug: str, stores: StoreDep, _: Auditor) -> Members:
    """The owner and members; a shared pipeline has neither."""
    return _members(stores, _existing(stores, slug))


@router.put(
    "/{slug}/members",
    response_model=Members,
    responses=error_responses(
        *_ERRORS,
        (403, "not_owner: only the owner or a lead may change members (and only a lead the owner)"),
        (422, "unknown_user: a member or owner is not a user"),
    ),
)
def write_members(slug: str, body: MembersUpdate, stores: StoreDep, actor: Engineer) -> Members:
    """Replace the members (and, for leads, the owner): the pipeline becomes visible to them alone."""
    slug = _existing(stores, slug)
    visibility.set_members(stores, actor, slug, body.members, owner=body.owner)
    return _members(stores, slug)


@router.delete(
    "/{slug}/members",
    response_model=Members,
    responses=error_responses(*_ERRORS, (403, "forbidden: needs the lead role")),
)
def share_pipeline(slug: str, stores: StoreDep, actor: Lead) -> Members:
    """Share the pipeline with every user again."""
    slug = _existing(stores, slug)
    visibility.share(stores, actor, slug)
    return _members(stores, slug)


def _existing(stores: Stores, raw: str) -> str:
    slug = sanitise_slug(raw)
    if stores.pipelines.head(keys.config_key(slug)) is None:
        raise PipelineNotFound(f"no pipeline {slug!r}")
    return slug


def _members(stores: Stores, slug: str) -> Members:
    access = visibility.load_access(stores.pipelines, slug)
    if access is None:
        return Members(owner=None, members=[], shared=True)
    return Members(owner=access.owner, members=list(access.members), shared=False)
