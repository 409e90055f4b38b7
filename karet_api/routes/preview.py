"""A pipeline's preview thumbnail: rendered from its first dashboard after each run, or uploaded (a PNG the
graph page captures), and shown by the pipeline list."""

import base64
import io
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from karet_api.bodies import exceeds_limit, read_capped
from karet_api.deps import StoreDep
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import Ok, error_responses
from karet_api.services import pipelines
from karet_defs.errors import ObjectNotFound
from karet_defs.slugs import sanitise_slug

router = APIRouter(prefix="/api", tags=["preview"], route_class=CappedJsonRoute)

MAX_PREVIEW_BYTES = 5 * 1024 * 1024
# A 1×1 fully transparent RGBA PNG, shown until a preview exists.
PLACEHOLDER_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR42mNgAAIAAAUAAen63NgAAAAASUVORK5CYII="
)
_PNG = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}


@router.head(
    "/p/{slug}/preview",
    response_class=Response,
    responses={
        200: {**_PNG, "description": "A preview is stored (rendered by the last run, or uploaded)"},
        404: {"description": "No preview yet"},
        **error_responses((401, "not signed in")),
    },
)
def has_preview(slug: str, stores: StoreDep) -> Response:
    """200 when a preview is stored, else 404 (the graph page then captures one)."""
    if not pipelines.has_preview(stores, sanitise_slug(slug)):
        raise ObjectNotFound(f"pipeline `{slug}` has no preview")
    return Response(media_type="image/png")


@router.get(
    "/p/{slug}/preview",
    response_class=Response,
    responses={
        200: {**_PNG, "description": "The stored preview, or a transparent 1×1 placeholder"},
        **error_responses((401, "not signed in")),
    },
)
def read_preview(slug: str, stores: StoreDep) -> Response:
    """Always an image: the stored preview (cached 60 s), or a placeholder (10 s) if missing or unreadable."""
    stored = pipelines.read_preview(stores, slug)
    max_age = 10 if stored is None else 60
    return Response(
        PLACEHOLDER_PNG if stored is None else stored,
        media_type="image/png",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )


@router.put(
    "/p/{slug}/preview",
    response_model=Ok,
    responses=error_responses(
        (401, "not signed in"),
        (413, "payload_too_large: over 5 MiB"),
        (422, "invalid_png (the body is not a PNG) or invalid_slug"),
        (502, "bucket_not_found"),
        (503, "s3_error"),
    ),
    openapi_extra={"requestBody": {**_PNG, "required": True}},
)
async def save_preview(
    slug: str,
    request: Request,
    stores: StoreDep,
    keep: Annotated[
        bool,
        Query(description="Keep this preview over the ones runs render, until an upload without `keep`"),
    ] = False,
) -> Ok:
    """Store the PNG request body as the preview: until the next run renders the first dashboard, or for
    good with `keep=true`."""
    slug = sanitise_slug(slug)
    body = io.BytesIO()
    await read_capped(request, MAX_PREVIEW_BYTES, body, too_large=exceeds_limit())
    await run_in_threadpool(partial(pipelines.save_preview, stores, slug, body.getvalue(), keep=keep))
    return Ok()
