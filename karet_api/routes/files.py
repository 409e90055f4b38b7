"""Routes of `/api/p/<slug>/files`: raw file uploads into a pipeline's source folder."""

from fastapi import APIRouter, Request

from karet_api.deps import AutoRunsDep, StoreDep
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import error_responses
from karet_api.schemas.events import FileUploaded
from karet_api.services import uploads
from karet_defs.slugs import sanitise_slug

router = APIRouter(prefix="/api", tags=["files"], route_class=CappedJsonRoute)


@router.put(
    "/p/{slug}/files/{path:path}",
    response_model=FileUploaded,
    responses=error_responses(
        (400, "the stored config cannot be read or parsed"),
        (401, "not signed in"),
        (404, "pipeline_config_not_found"),
        (413, "payload_too_large: over 100 MB"),
        (422, "invalid_path (unsafe, or outside every source folder), unsupported_file_type, invalid_slug"),
        (503, "s3_error"),
    ),
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
)
async def upload_file(
    slug: str, path: str, request: Request, stores: StoreDep, runs: AutoRunsDep
) -> FileUploaded:
    """Store the body at `pipelines/<slug>/<path>` and run the pipeline (debounced, trigger `webhook`)."""
    return await uploads.receive_upload(request, stores, runs, sanitise_slug(slug), path)
