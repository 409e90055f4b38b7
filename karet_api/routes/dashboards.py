"""A pipeline's dashboards (REFERENCE §4.12): the stored files, their normalized spec with charts, their
data with filters bound, and a verdict on their queries."""

from fastapi import APIRouter, Depends, Response

from karet_api.deps import QueryGateDep, SettingsDep, StoreDep
from karet_api.roles import Role, require_role
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.schemas.dashboards import (
    DashboardDataRequest,
    DashboardList,
    DashboardListing,
    DashboardSpec,
)
from karet_defs.dashboards import files
from karet_defs.dashboards.charts import panel_spec
from karet_defs.dashboards.data import DashboardData, Verdict, dashboard_data, validate_dashboard
from karet_defs.query.engine import QueryLimits
from karet_defs.slugs import sanitise_slug

router = APIRouter(prefix="/api", tags=["dashboards"], route_class=CappedJsonRoute)

_COMMON = ((401, "not signed in"), *STORE_ERRORS)
_NOT_FOUND = (404, "dashboard_not_found (`name` names it)")
_INVALID = (
    422,
    "invalid_dashboard: the file does not read as a dashboard (details: path of each problem); invalid_slug",
)
_BUSY = (429, "rate_limited: every query slot is busy (see Retry-After)")


@router.get(
    "/p/{slug}/dashboards",
    response_model=DashboardList,
    responses=error_responses((422, "invalid_slug"), *_COMMON),
)
def list_dashboards(slug: str, stores: StoreDep) -> DashboardList:
    """The top-level `dashboards/*.json|yaml|yml` files: ids, and listings sorted by name."""
    ids, listings = files.list_dashboards(stores, sanitise_slug(slug))
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
        **error_responses(_NOT_FOUND, (422, "invalid_slug"), *_COMMON),
    },
)
def read_dashboard(slug: str, name: str, stores: StoreDep) -> Response:
    """One dashboard by id: `<name>.json` as JSON, else `<name>.yaml` / `.yml` as YAML text."""
    body, media_type = files.read_dashboard(stores, sanitise_slug(slug), name)
    return Response(body, media_type=media_type)


@router.get(
    "/p/{slug}/dashboards/{name}/spec",
    response_model=DashboardSpec,
    responses=error_responses(_NOT_FOUND, _INVALID, *_COMMON),
)
def dashboard_spec(slug: str, name: str, stores: StoreDep) -> DashboardSpec:
    """The dashboard in one shape for v1 and v2 (every panel a SQL query), and a Vega-Lite chart per panel
    reading the named dataset `rows` (null for tables)."""
    dashboard = files.load_dashboard(stores, sanitise_slug(slug), name)
    return DashboardSpec(dashboard=dashboard, charts=[panel_spec(p) for p in dashboard.panels])


@router.post(
    "/p/{slug}/dashboards/{name}/data",
    response_model=DashboardData,
    dependencies=[Depends(require_role(Role.auditor))],
    responses=error_responses(
        (400, "config_parse_failed: the pipeline's config does not parse"),
        (404, "pipeline_not_found, dashboard_not_found"),
        (422, "invalid_dashboard, invalid_filter (a value of the wrong shape), invalid_slug"),
        _BUSY,
        *_COMMON,
    ),
)
def data(
    slug: str,
    name: str,
    body: DashboardDataRequest,
    stores: StoreDep,
    settings: SettingsDep,
    gate: QueryGateDep,
) -> DashboardData:
    """Run every panel's query and every dropdown's `options_sql` with the filter values bound (a dropdown
    `d` as `$d`, NULL while unset; a date range `p` as `$p_from`/`$p_to`, all dates while unset). A panel
    whose query fails answers its `error`; the others still answer."""
    slug = sanitise_slug(slug)
    dashboard = files.load_dashboard(stores, slug, name)
    with gate.slot():
        return dashboard_data(
            stores, slug, dashboard, body.filters, limits=QueryLimits.from_settings(settings)
        )


@router.post(
    "/p/{slug}/dashboards/{name}/validate",
    response_model=Verdict,
    dependencies=[Depends(require_role(Role.auditor))],
    responses=error_responses(
        (400, "config_parse_failed"),
        (404, "pipeline_not_found, dashboard_not_found"),
        (422, "invalid_slug"),
        _BUSY,
        *_COMMON,
    ),
)
def validate(slug: str, name: str, stores: StoreDep, settings: SettingsDep, gate: QueryGateDep) -> Verdict:
    """Plan every query (`LIMIT 0`, no row read) with the filters unset: always 200, `ok` and every problem
    (`{kind, message, path}`), a dashboard that does not parse included."""
    with gate.slot():
        return validate_dashboard(
            stores, sanitise_slug(slug), name, limits=QueryLimits.from_settings(settings)
        )
