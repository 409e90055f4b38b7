"""A pipeline's stored config: read with its ETag and version, write with If-Match or
X-Karet-Config-Version (each a real compare-and-swap), validate.

A save is validated first (Karet's latest save pre-flight), so the assets only ever read a config they can
run, and is recorded as the next config version (``history.versions``); the editor keeps work in progress
as a draft (`?draft=true`), stored without validation beside it.
"""

import json
from functools import partial
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from karet_api.deps import ReloaderDep, StoreDep
from karet_api.roles import Engineer, Role, require_role
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, Ok, error_responses
from karet_api.schemas.config import ConfigSaved, ConfigUpgrade
from karet_api.services import pipelines, validation
from karet_api.services.reload import DefinitionsReloader
from karet_defs.config.structure import Structure, structure_of_document
from karet_defs.config.upgrade import upgrade_lookups
from karet_defs.config.validate import load_pipeline, parse_pipeline
from karet_defs.errors import ObjectNotFound
from karet_defs.slugs import sanitise_slug
from karet_defs.store import keys
from karet_defs.store.base import Stores

router = APIRouter(prefix="/api", tags=["config"], route_class=CappedJsonRoute)

CONFIG_VERSION_HEADER = "X-Karet-Config-Version"
ENVIRONMENT_HEADER = "X-Karet-Environment"
NOTE_HEADER = "X-Karet-Note"
MAX_NOTE = 1000

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
    """The stored config verbatim, with `ETag: "<etag>"` for a later `If-Match` and `X-Karet-Config-Version`
    (and `X-Karet-Environment`) naming its version; with `draft=true` the editor's draft when there is one.
    A pipeline in `reviewed` mode answers its newest version, the one saves build on."""
    working, is_draft = pipelines.read_config(stores, sanitise_slug(slug), draft=draft)
    headers = {"ETag": f'"{working.etag}"', "X-Karet-Draft": str(is_draft).lower()}
    if working.version is not None:
        headers[CONFIG_VERSION_HEADER] = str(working.version.version)
        headers[ENVIRONMENT_HEADER] = working.version.environment
    return Response(working.body, media_type="application/json", headers=headers)


@router.put(
    "/p/{slug}/config",
    response_model=ConfigSaved,
    response_model_exclude_none=True,
    responses=error_responses(
        (401, "not signed in"),
        (
            412,
            "etag_mismatch: `If-Match` is not the stored config's ETag; stale_config: "
            "`X-Karet-Config-Version` is not the current version",
        ),
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
    actor: Engineer,
    if_match: Annotated[str | None, Header(description="ETag read before, quotes optional")] = None,
    config_version: Annotated[
        int | None,
        Header(alias=CONFIG_VERSION_HEADER, description="The `X-Karet-Config-Version` read before"),
    ] = None,
    note: Annotated[
        str | None, Header(alias=NOTE_HEADER, description="Why: recorded with the version (percent-encoded)")
    ] = None,
    draft: _Draft = False,
) -> ConfigSaved:
    """Record the body verbatim as the next config version once it validates, only over `If-Match` /
    `X-Karet-Config-Version` when given. In `direct` mode it goes live at once; in `reviewed` mode it is a
    development version, promoted to reach production. With `draft=true`: any JSON, stored as the draft,
    no version."""
    slug = sanitise_slug(slug)
    body = await validation.read_config_body(request)
    if draft:
        etag = await run_in_threadpool(pipelines.write_draft, stores, slug, body, if_match)
        response.headers["ETag"] = f'"{etag}"'
        return ConfigSaved(etag=etag)
    before = await run_in_threadpool(stored_structure, stores, slug)
    return await _save_version(
        stores,
        slug,
        body,
        before,
        response,
        reloader,
        author=actor.name,
        if_match=if_match,
        expected_version=config_version,
        note=read_note(note),
    )


async def _save_version(
    stores: Stores,
    slug: str,
    body: bytes,
    before: Structure,
    response: Response,
    reloader: DefinitionsReloader,
    **save: Any,
) -> ConfigSaved:
    """Record ``body`` as the next config version (``save``: author, preconditions, note), reload the
    definitions when the live structure changed, and set the headers a client saves over next."""
    saved = await run_in_threadpool(partial(pipelines.write_config, stores, slug, body, **save))
    # Only a change of structure needs new definitions; an edit of expressions is read at run time.
    if saved.live and structure_of_document(body) != before:
        reloader.request()
    response.headers["ETag"] = f'"{saved.etag}"'
    response.headers[CONFIG_VERSION_HEADER] = str(saved.version.version)
    return ConfigSaved(etag=saved.etag, version=saved.version.version, environment=saved.version.environment)


@router.post(
    "/p/{slug}/config/upgrade",
    response_model=ConfigUpgrade,
    response_model_exclude_none=True,
    responses=error_responses(
        (401, "not signed in"),
        (404, "pipeline_config_not_found"),
        (412, "etag_mismatch: the config changed between the read and the save"),
        (422, "invalid_slug, or an upgraded config that does not validate (with `save=true`)"),
        *STORE_ERRORS,
    ),
)
async def upgrade_config(
    slug: str,
    response: Response,
    stores: StoreDep,
    reloader: ReloaderDep,
    actor: Engineer,
    save: Annotated[bool, Query(description="`true`: record the upgrade as the next config version")] = False,
) -> ConfigUpgrade:
    """The stored config with `lookup_mappings` upgraded to `dimensions` and `lookup_ref` to `dim_ref`
    (Karet E4), as a preview; with `save=true` it is saved as a PUT would save it, over the ETag read."""
    slug = sanitise_slug(slug)
    working, _ = await run_in_threadpool(pipelines.read_config, stores, slug)
    parse_pipeline(working.body)  # a stored config that is not a pipeline config answers 422 `schema`
    upgrade = upgrade_lookups(json.loads(working.body))
    if not save or not upgrade.changed:
        return ConfigUpgrade(config=upgrade.config, changed=upgrade.changed, notes=upgrade.notes)
    body = json.dumps(upgrade.config, indent=2).encode()
    saved = await _save_version(
        stores,
        slug,
        body,
        structure_of_document(working.body),
        response,
        reloader,
        author=actor.name,
        if_match=working.etag,
        note="upgrade: lookup_mappings to dimensions",
    )
    return ConfigUpgrade(config=upgrade.config, changed=True, notes=upgrade.notes, saved=saved)


@router.post(
    "/p/{slug}/validate",
    response_model=Ok,
    dependencies=[Depends(require_role(Role.auditor))],
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


def read_note(header: str | None) -> str | None:
    """The `X-Karet-Note` header's text: percent-decoded, since a header carries only Latin-1."""
    text = unquote(header).strip() if header else ""
    return text[:MAX_NOTE] or None


def stored_structure(stores: Stores, slug: str) -> Structure:
    try:
        return structure_of_document(stores.pipelines.get(keys.config_key(slug)))
    except ObjectNotFound:
        return structure_of_document(None)
