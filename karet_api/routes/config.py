"""A pipeline's stored config: read with its ETag, write with If-Match (a real compare-and-swap), validate.

A save is validated first (Karet's latest save pre-flight), so the assets only ever read a config they can
run; the editor keeps work in progress as a draft (`?draft=true`), stored without validation beside it.
"""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from karet_api.deps import ReloaderDep, StoreDep
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, Ok, error_responses
from karet_api.schemas.config import ConfigSaved
from karet_api.services import pipelines, validation
from karet_defs.config.structure import Structure, structure_of_document
from karet_defs.config.validate import load_pipeline
from karet_defs.errors import ObjectNotFound
from karet_defs.slugs import sanitise_slug
from karet_defs.store import keys
from karet_defs.store.base import Stores

router = APIRouter(prefix="/api", tags=["config"], route_class=CappedJsonRoute)

_Draft = Annotated[
    bool, Query(description="`true`: the editor's draft, stored without validation; the live config stays")
]
_JSON_BODY = {
    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}
}


@router.get(
    "/p/{slug}/config",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "The stored pipeline.json (or draft), byte for byte; its ETag in `ETag` "
            "and `X-Karet-Draft: true|false` saying which it is",
        },
        **error_responses(
            (401, "not signed in"), (404, "pipeline_config_not_found"), (422, "invalid_slug"), *STORE_ERRORS
        ),
    },
)
def read_config(stores: StoreDep, slug: str, draft: _Draft = False) -> Response:
    """The stored config verbatim, with `ETag: "<etag>"` for a later `If-Match`; with `draft=true` the
    editor's draft when there is one."""
    body, etag, is_draft = pipelines.read_config(stores, sanitise_slug(slug), draft=draft)
    headers = {"ETag": f'"{etag}"', "X-Karet-Draft": str(is_draft).lower()}
    return Response(body, media_type="application/json", headers=headers)


@router.put(
    "/p/{slug}/config",
    response_model=ConfigSaved,
    responses=error_responses(
        (401, "not signed in"),
        (412, "etag_mismatch: `If-Match` is not the stored config's ETag"),
        (413, "payload_too_large: body over 5 MiB"),
        (
            422,
            "invalid_json (the body is not JSON), invalid_slug, or an invalid config: `error` is the first "
            "error's kind, `details` all of them; nothing is stored",
        ),
        *STORE_ERRORS,
    ),
    openapi_extra=_JSON_BODY,
)
async def write_config(
    slug: str,
    request: Request,
    response: Response,
    stores: StoreDep,
    reloader: ReloaderDep,
    if_match: Annotated[str | None, Header(description="ETag read before, quotes optional")] = None,
    draft: _Draft = False,
) -> ConfigSaved:
    """Store the body verbatim once it validates, only over `If-Match` when given (with `draft=true`: any
    JSON, as the draft, the live config untouched)."""
    slug = sanitise_slug(slug)
    body = await validation.read_config_body(request)
    if draft:
        etag = await run_in_threadpool(pipelines.write_config, stores, slug, body, if_match, draft=True)
        response.headers["ETag"] = f'"{etag}"'
        return ConfigSaved(etag=etag)
    before = await run_in_threadpool(_stored_structure, stores, slug)
    etag = await run_in_threadpool(pipelines.write_config, stores, slug, body, if_match)
    # Only a change of structure needs new definitions; an edit of expressions is read at run time.
    if structure_of_document(body) != before:
        reloader.request()
    response.headers["ETag"] = f'"{etag}"'
    return ConfigSaved(etag=etag)


@router.post(
    "/p/{slug}/validate",
    response_model=Ok,
    responses=error_responses(
        (401, "not signed in"),
        (413, "payload_too_large: body over 5 MiB"),
        (422, "invalid config: `error` is the first error's kind, `details` all of them; or invalid_slug"),
    ),
    openapi_extra=_JSON_BODY,
)
async def validate_config(slug: str, request: Request) -> Ok:
    """Validate a candidate pipeline.json as the worker's `/config/validate` does."""
    sanitise_slug(slug)
    load_pipeline(await validation.read_config_body(request))
    return Ok()


def _stored_structure(stores: Stores, slug: str) -> Structure:
    try:
        return structure_of_document(stores.pipelines.get(keys.config_key(slug)))
    except ObjectNotFound:
        return structure_of_document(None)
