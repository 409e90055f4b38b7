"""After a run has published its tables: render the pipeline's preview, and show it in the Dagster UI.

The chart goes on the tables' materialization metadata as Markdown holding a half-size PNG as a data URI,
so the asset page shows the dashboard the run just fed. A preview that cannot be rendered never fails the
run: the run logs a warning and the metadata says why there is none.
"""

import base64

import dagster as dg

from karet_defs.dashboards.preview import render_preview, to_png
from karet_defs.errors import KaretError
from karet_defs.query.engine import QueryLimits
from karet_defs.settings import Settings
from karet_defs.store.base import Stores

PREVIEW_METADATA = "preview"
THUMBNAIL_SCALE = 0.5


def preview_metadata(
    context: dg.AssetExecutionContext, stores: Stores, slug: str, settings: Settings
) -> dict[str, dg.MetadataValue]:
    """Render and store the preview; the metadata showing it (none when there is no dashboard to draw)."""
    try:
        preview = render_preview(stores, slug, limits=QueryLimits.from_settings(settings))
        thumbnail = to_png(preview.spec, scale=THUMBNAIL_SCALE) if preview is not None else b""
    except KaretError as exc:
        context.log.warning(f"preview of `{slug}` not rendered: {exc.code}: {exc.message}")
        return {PREVIEW_METADATA: dg.MetadataValue.text(f"not rendered: {exc.message}")}
    if preview is None:
        return {}
    encoded = base64.b64encode(thumbnail).decode("ascii")
    kept = "" if preview.stored else "\n\n(not the pipeline's preview: an uploaded one is kept)"
    markdown = f"![{preview.dashboard}](data:image/png;base64,{encoded}){kept}"
    return {PREVIEW_METADATA: dg.MetadataValue.md(markdown)}
