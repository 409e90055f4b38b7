"""A pipeline's dashboards, served as stored: v1 JSON and v2 YAML files (REFERENCE §4.12)."""

from fastapi import APIRouter, Response

from karet_api.deps import StoreDep
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.schemas.dashboards import DashboardList, DashboardListing
from karet_api.services import pipelines
from karet_defs.slugs import sanitise_slug

router = APIRouter(prefix="/api", tags=["dashboards"], route_class=CappedJsonRoute)


@router.get(
    "/p/{slug}/dashboards",
    response_model=DashboardList,
    responses=error_responses((401, "not signed in"), (422, "invalid_slug"), *STORE_ERRORS),
)
def list_dashboards(slug: str, stores: StoreDep) -> DashboardList:
    """The top-level `dashboards/*.json|yaml|yml` files: ids, and listings sorted by name."""
    ids, listings = pipelines.list_dashboards(stores, sanitise_slug(slug))
    return DashboardList(
        dashboards=ids, listings=[DashboardListing(id=id_, name=name) for id_, name in listings]
    )


@router.get(
    "/p/{slug}/dashboards/{name}",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {"schema": {"type": "object"}}, "application/yaml": {}},
            "description": "A v1 dashboard as JSON, or a v2 dashboard as YAML text",
        },
        **error_responses(
            (401, "not signed in"),
            (404, "dashboard_not_found (`name` names it)"),
            (422, "invalid_slug"),
            *STORE_ERRORS,
        ),
    },
)
def read_dashboard(slug: str, name: str, stores: StoreDep) -> Response:
    """One dashboard by id: `<name>.json` as JSON, else `<name>.yaml` / `.yml` as YAML text."""
    body, media_type = pipelines.read_dashboard(stores, sanitise_slug(slug), name)
    return Response(body, media_type=media_type)
