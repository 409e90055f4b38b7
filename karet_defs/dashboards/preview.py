"""A pipeline's preview PNG rendered from its first dashboard, server-side, after each run.

The first dashboard of the listing runs with its filters unset; its first charted panels that answered are
drawn by ``charts.preview_spec`` and rendered by vl-convert (Vega in an embedded JavaScript engine: no
browser, nothing fetched). The image replaces ``pipelines/<slug>/preview.png`` unless the user uploaded
one and asked to keep it (``PUT …/preview?keep=true`` leaves the marker ``preview.keep`` beside it; a
plain upload removes the marker, so runs take over again). Rendering is bounded: a few panels, a few
hundred rows each, about ``charts.PREVIEW_WIDTH`` pixels wide.
"""

from dataclasses import dataclass
from typing import Any

import vl_convert

from karet_defs.dashboards.charts import preview_spec
from karet_defs.dashboards.data import dashboard_data
from karet_defs.dashboards.files import first_dashboard_id, load_dashboard
from karet_defs.errors import PreviewFailed
from karet_defs.query.engine import QueryLimits
from karet_defs.store import keys
from karet_defs.store.base import Stores

PNG_TYPE = "image/png"
PREVIEW_ROWS = 500  # per panel: a chart of more is unreadable at this size anyway


@dataclass(frozen=True)
class Preview:
    dashboard: str  # the dashboard's name
    png: bytes
    spec: dict[str, Any]  # what was rendered, rows inlined
    stored: bool  # False when an uploaded preview is kept instead


def render_preview(stores: Stores, slug: str, *, limits: QueryLimits | None = None) -> Preview | None:
    """Render the pipeline's first dashboard and store it as its preview (unless an upload is kept);
    None when there is no dashboard or none of its panels draws."""
    dashboard_id = first_dashboard_id(stores, slug)
    if dashboard_id is None:
        return None
    dashboard = load_dashboard(stores, slug, dashboard_id)
    answer = dashboard_data(stores, slug, dashboard, {}, limits=limits)
    rows = [p.rows[:PREVIEW_ROWS] if p.error is None else None for p in answer.panels]
    spec = preview_spec(dashboard, rows)
    if spec is None:
        return None
    png = to_png(spec)
    stored = not keeps_upload(stores, slug)
    if stored:
        stores.pipelines.put(keys.preview_key(slug), png, content_type=PNG_TYPE)
    return Preview(dashboard=dashboard.name, png=png, spec=spec, stored=stored)


def to_png(spec: dict[str, Any], *, scale: float = 1.0) -> bytes:
    """A Vega-Lite spec rendered to PNG bytes; ``preview_failed`` with Vega's reason when it cannot be."""
    try:
        return bytes(vl_convert.vegalite_to_png(spec, scale=scale))
    except ValueError as exc:  # vl-convert reports every failure of the JavaScript side so
        reason = str(exc).splitlines()[:2]
        raise PreviewFailed(f"the chart could not be rendered: {' '.join(reason)}") from exc


def keeps_upload(stores: Stores, slug: str) -> bool:
    """Whether runs leave the preview alone because the user uploaded one to keep."""
    return stores.pipelines.head(keys.preview_keep_key(slug)) is not None


def keep_upload(stores: Stores, slug: str, keep: bool) -> None:
    """Mark the uploaded preview as kept over rendered ones, or hand the preview back to runs."""
    if keep:
        stores.pipelines.put(keys.preview_keep_key(slug), b"", content_type="text/plain")
    else:
        stores.pipelines.delete(keys.preview_keep_key(slug))
