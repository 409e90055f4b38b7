"""Pages for a browser, outside the JSON API and its OpenAPI document: a dashboard, the sign-in form, and
the charting bundle the dashboard loads."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from karet_api.deps import ClientAddress, LimiterDep, SettingsDep, StoreDep
from karet_api.errors import status_for
from karet_api.roles import authorize
from karet_api.services import pages
from karet_api.services.accounts import identity
from karet_api.services.auth.admin import needs_setup
from karet_defs.dashboards.charts import panel_spec
from karet_defs.dashboards.files import load_dashboard
from karet_defs.errors import Forbidden, NotFound, Unprocessable
from karet_defs.slugs import sanitise_slug

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/p/{slug}/dashboards/{name}", response_class=HTMLResponse)
def dashboard(
    slug: str,
    name: str,
    request: Request,
    settings: SettingsDep,
    stores: StoreDep,
    limiter: LimiterDep,
    client: ClientAddress,
) -> Response:
    """The dashboard as a page, guarded as the pipeline routes are (role, pipeline visibility); a browser
    that is not signed in is sent to the sign-in form instead of being answered JSON, and a dashboard that
    cannot be shown gets a notice saying why."""
    actor = identity.resolve(request, settings, stores.pipelines)
    if actor is None:
        return RedirectResponse(pages.login_redirect_url(request), status_code=302)
    try:
        authorize(request, actor, stores, limiter, client)
        slug = sanitise_slug(slug)
        found = load_dashboard(stores, slug, name)
    except (Forbidden, NotFound, Unprocessable) as exc:  # said to the person; store failures go on
        status = status_for(exc)
        return pages.html_response(pages.error_page(status, exc.code, exc.message), status)
    return pages.html_response(pages.dashboard_page(slug, found, [panel_spec(p) for p in found.panels]))


@router.get(pages.LOGIN_PATH, response_class=HTMLResponse)
def login(stores: StoreDep, next_path: Annotated[str | None, Query(alias="next")] = None) -> HTMLResponse:
    """The sign-in form (the admin password form while none is set); it then opens `next`, a local path."""
    return pages.html_response(
        pages.login_page(pages.safe_next(next_path), needs_setup=needs_setup(stores.pipelines))
    )


@router.get(pages.VEGA_BUNDLE_PATH)
def vega_bundle() -> Response:
    """Vega, Vega-Lite and vega-embed, from `vl-convert-python` (its `?v=` names the version)."""
    return Response(
        pages.vega_bundle(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
