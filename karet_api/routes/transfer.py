"""Export a pipeline as a ZIP (streamed) and import one under a new slug (REFERENCE §4.10, SPEC §6)."""

import tempfile
import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from karet_api.bodies import exceeds_limit, read_capped
from karet_api.deps import ReloaderDep, StoreDep
from karet_api.roles import Engineer
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.schemas.pipelines import PipelineCreated
from karet_api.services import transfer
from karet_api.services.accounts import visibility
from karet_api.services.pipelines import ensure_slug_free
from karet_defs.slugs import sanitise_slug

router = APIRouter(prefix="/api", tags=["transfer"], route_class=CappedJsonRoute)

# Small uploads stay in memory; bigger ones spill to disk instead of growing the process.
_SPOOL_BYTES = 8 * 1024 * 1024


@router.get(
    "/p/{slug}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "Every object of the pipeline at its path relative to `pipelines/<slug>/`",
        },
        **error_responses(
            (401, "not signed in"),
            (404, "pipeline_not_found: no object under `pipelines/<slug>/`"),
            (422, "invalid_slug"),
            *STORE_ERRORS,
        ),
    },
)
def export_pipeline(slug: str, stores: StoreDep) -> StreamingResponse:
    """Download the pipeline's objects from all three buckets as one ZIP, streamed as it is built."""
    slug = sanitise_slug(slug)
    entries = transfer.export_entries(stores, slug)
    return StreamingResponse(
        transfer.iter_zip(entries),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{slug}.zip"'},
    )


@router.post(
    "/pipelines/import",
    response_model=PipelineCreated,
    responses=error_responses(
        (401, "not signed in"),
        (409, "already_exists: the slug has a pipeline.json"),
        (413, "zip_too_large (over 200 MiB) or zip_expands_too_large (over 1 GiB, or a zip bomb)"),
        (
            422,
            "invalid_slug, invalid_zip, missing_pipeline_json, too_many_entries (over 2000) or "
            "invalid_entry_path",
        ),
        *STORE_ERRORS,
    ),
    openapi_extra={
        "requestBody": {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "required": True,
        }
    },
)
async def import_pipeline(
    request: Request,
    stores: StoreDep,
    reloader: ReloaderDep,
    actor: Engineer,
    name: Annotated[str | None, Query(description="Slug to import as; default `imported-<epoch ms>`")] = None,
) -> PipelineCreated:
    """Create a pipeline from an exported ZIP (the raw request body); a refused import stores nothing."""
    slug = sanitise_slug(name or "", default=f"imported-{time.time_ns() // 1_000_000}")
    await run_in_threadpool(ensure_slug_free, stores, slug)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as body:
        too_large = exceeds_limit("zip_too_large")
        await read_capped(request, transfer.MAX_ZIP_BYTES, body, too_large=too_large)
        await run_in_threadpool(partial(transfer.import_zip, stores, slug, body, author=actor.name))
    await run_in_threadpool(visibility.claim, stores, actor, slug)
    reloader.request()
    return PipelineCreated(pipeline=slug)
