"""A pipeline's config history (Karet E4) and its promotion through environments (DRLS).

List, read, diff against the live config and revert versions; promote, demote and retire them; run one in
QA or UAT into its sandbox and compare the sandbox with production; export one as a portable document and
import one. The rules live in ``karet_defs.history``; these handlers parse,
check the caller's role, and ask for a reload of the definitions when the live config's structure changed.
"""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import JSONResponse

from karet_api.deps import InstanceDep, ReloaderDep, SettingsDep, StoreDep
from karet_api.roles import Auditor, Engineer, Lead
from karet_api.routes.config import (
    CONFIG_VERSION_HEADER,
    ENVIRONMENT_HEADER,
    NOTE_HEADER,
    read_note,
    stored_structure,
)
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.schemas.history import (
    NoteBody,
    PortableVersion,
    Reverted,
    SandboxRunStarted,
    TransitionResult,
    VersionDetail,
    VersionImported,
    VersionList,
)
from karet_api.services.accounts import visibility
from karet_api.services.reload import DefinitionsReloader
from karet_api.services.runs import start_job
from karet_defs.errors import PipelineConfigNotFound, Unprocessable
from karet_defs.history import portable, promotion, sandbox, versions
from karet_defs.history.impact import Impact, version_impact
from karet_defs.orchestration.sandbox import sandbox_job_name, sandbox_run_config, sandbox_tags
from karet_defs.query.engine import QueryLimits
from karet_defs.slugs import sanitise_slug
from karet_defs.store import keys
from karet_defs.store.base import Stores

router = APIRouter(prefix="/api", tags=["config history"], route_class=CappedJsonRoute)

_VERSION = "/p/{slug}/config/versions/{version}"
_ERRORS = ((401, "not signed in"), (403, "forbidden: the caller's role is too low"))
_MISSING = (404, "pipeline_config_not_found, config_version_not_found")
_MOVED = (409, "concurrent_change: another request moved the version first; invalid_transition")


def _existing(stores: Stores, raw_slug: str) -> str:
    slug = sanitise_slug(raw_slug)
    if stores.pipelines.head(keys.config_key(slug)) is None:
        raise PipelineConfigNotFound(f"pipeline `{slug}` has no pipeline.json")
    return slug


class LiveWatch:
    """Asks for new definitions when a request changed the structure of the live config."""

    def __init__(self, stores: Stores, slug: str, reloader: DefinitionsReloader) -> None:
        self.stores, self.slug, self.reloader = stores, slug, reloader
        self.before = stored_structure(stores, slug)

    def done(self) -> None:
        if stored_structure(self.stores, self.slug) != self.before:
            self.reloader.request()


@router.get(
    "/p/{slug}/config/versions",
    response_model=VersionList,
    responses=error_responses(*_ERRORS, (404, "pipeline_config_not_found"), *STORE_ERRORS),
)
def list_versions(slug: str, stores: StoreDep, _: Auditor) -> VersionList:
    """Every kept version of the config, newest first, with its environment."""
    slug = _existing(stores, slug)
    history, _etag = versions.read_history(stores.pipelines, slug)
    live = versions.config_version_of(stores, slug)
    return VersionList(
        pipeline=slug, promotion=history.promotion, live_version=live, versions=history.versions[::-1]
    )


@router.get(
    _VERSION, response_model=VersionDetail, responses=error_responses(*_ERRORS, _MISSING, *STORE_ERRORS)
)
def read_version(slug: str, version: int, stores: StoreDep, _: Auditor) -> VersionDetail:
    """One version: its record and its config document."""
    return version_detail(stores, _existing(stores, slug), version)


def version_detail(stores: Stores, slug: str, version: int) -> VersionDetail:
    history, _etag = versions.read_history(stores.pipelines, slug)
    record = history.get(version)
    document = json.loads(versions.read_document(stores.pipelines, slug, version))
    return VersionDetail(**record.model_dump(), pipeline=document)


@router.get(
    _VERSION + "/diff",
    response_model=list[dict[str, Any]],
    responses=error_responses(*_ERRORS, _MISSING, *STORE_ERRORS),
)
def diff_version(slug: str, version: int, stores: StoreDep, _: Auditor) -> JSONResponse:
    """What reverting to this version would change in the live config: a JSON Patch (RFC 6902) list,
    `layout` ignored; `X-Karet-Config-Version` names the live version it was taken against."""
    patch, against = versions.diff_against_live(stores, _existing(stores, slug), version)
    headers = {CONFIG_VERSION_HEADER: str(against)} if against is not None else {}
    return JSONResponse(patch, headers=headers)


@router.post(
    _VERSION + "/revert",
    response_model=Reverted,
    responses=error_responses(
        *_ERRORS,
        _MISSING,
        (412, "etag_mismatch or stale_config, as for `PUT config`"),
        (422, "the version no longer validates: `error` is the first error's kind, `details` every error"),
        *STORE_ERRORS,
    ),
)
def revert_version(
    slug: str,
    version: int,
    stores: StoreDep,
    reloader: ReloaderDep,
    actor: Engineer,
    body: Annotated[NoteBody | None, Body()] = None,
    if_match: Annotated[str | None, Header()] = None,
    config_version: Annotated[int | None, Header(alias=CONFIG_VERSION_HEADER)] = None,
    note: Annotated[str | None, Header(alias=NOTE_HEADER)] = None,
) -> JSONResponse:
    """Write the version's document forward as a new version, validated again (goes live in `direct`
    mode, is a development version in `reviewed` mode)."""
    slug = _existing(stores, slug)
    watch = LiveWatch(stores, slug, reloader)
    saved = versions.revert(
        stores,
        slug,
        version,
        author=actor.name,
        note=read_note(note) or (body.note if body else None),
        expected_version=config_version,
        if_match=if_match,
    )
    watch.done()
    result = Reverted(etag=saved.etag, version=saved.version)
    headers = {"ETag": f'"{saved.etag}"', CONFIG_VERSION_HEADER: str(saved.version.version)}
    return JSONResponse(result.model_dump(mode="json"), headers=headers)


@router.post(
    _VERSION + "/promote",
    response_model=TransitionResult,
    responses={
        202: {"model": TransitionResult, "description": "pending_approval: an approval request was opened"},
        **error_responses(
            *_ERRORS,
            _MISSING,
            (409, "approval_pending, invalid_transition (no environment after it), concurrent_change"),
            *STORE_ERRORS,
        ),
    },
)
def promote_version(
    slug: str,
    version: int,
    stores: StoreDep,
    actor: Engineer,
    expected: Annotated[
        str | None,
        Header(
            alias=ENVIRONMENT_HEADER,
            description="The environment the version was seen in; moved since → 409 concurrent_change",
        ),
    ] = None,
) -> JSONResponse:
    """development → qa at once (200); qa → uat and uat → production open an approval request (202)."""
    transition = promotion.promote(
        stores, _existing(stores, slug), version, actor=actor.name, expected=expected
    )
    return _transition_response(transition, 202 if transition.status == "pending_approval" else 200)


def _transition_response(transition: promotion.Transition, status: int = 200) -> JSONResponse:
    result = TransitionResult(
        status=transition.status,
        environment=transition.environment,
        approval_request_id=transition.approval_request_id,
    )
    return JSONResponse(result.model_dump(mode="json"), status_code=status)


@router.post(
    _VERSION + "/demote",
    response_model=TransitionResult,
    responses=error_responses(*_ERRORS, _MISSING, _MOVED, *STORE_ERRORS),
)
def demote_version(slug: str, version: int, stores: StoreDep, actor: Lead) -> JSONResponse:
    """UAT → QA; a pending request for production is rejected with it."""
    return _transition_response(promotion.demote(stores, _existing(stores, slug), version, actor=actor.name))


@router.post(
    _VERSION + "/retire",
    response_model=TransitionResult,
    responses=error_responses(
        *_ERRORS, _MISSING, _MOVED, (422, "the version it falls back to no longer validates"), *STORE_ERRORS
    ),
)
def retire_version(
    slug: str, version: int, stores: StoreDep, reloader: ReloaderDep, actor: Lead
) -> JSONResponse:
    """Take the production version out of production: the version it replaced goes live again."""
    slug = _existing(stores, slug)
    watch = LiveWatch(stores, slug, reloader)
    transition = promotion.retire(stores, slug, version, actor=actor.name)
    watch.done()
    return _transition_response(transition)


@router.post(
    _VERSION + "/sandbox-run",
    response_model=SandboxRunStarted,
    status_code=202,
    responses=error_responses(
        *_ERRORS,
        _MISSING,
        (409, "invalid_environment: only a version in qa or uat runs in a sandbox"),
        (422, "no_tables, or the version's config does not validate (`details` every error)"),
        (500, "dagster_unavailable: the Dagster webserver did not accept the run (queued deployments)"),
        *STORE_ERRORS,
    ),
)
def start_sandbox_run(
    slug: str, version: int, stores: StoreDep, instance: InstanceDep, settings: SettingsDep, _: Engineer
) -> SandboxRunStarted:
    """Run the version (in qa or uat) on the pipeline's raw files into its environment's sandbox tables
    (`env/<environment>/clean/`), from scratch; production's tables are never touched."""
    slug = _existing(stores, slug)
    environment = sandbox.sandbox_environment(stores, slug, version)
    if not sandbox.version_pipeline(stores, slug, version).analytic_tables:
        raise Unprocessable(f"version {version} of `{slug}` has no analytic tables to run", code="no_tables")
    job_id = start_job(
        instance,
        settings,
        sandbox_job_name(slug),
        run_config=sandbox_run_config(slug, environment, version),
        tags=sandbox_tags(slug, environment, version),
    )
    return SandboxRunStarted(job_id=job_id, environment=environment, version=version)


@router.get(
    _VERSION + "/impact",
    response_model=Impact,
    responses=error_responses(
        *_ERRORS,
        _MISSING,
        (409, "no_sandbox_run: no sandbox run of the version has committed its tables yet"),
        *STORE_ERRORS,
    ),
)
def read_impact(slug: str, version: int, stores: StoreDep, settings: SettingsDep, _: Auditor) -> Impact:
    """The version's sandbox tables compared with production's: rows per partition, schema differences
    and a sample of the rows found on one side only."""
    return version_impact(stores, _existing(stores, slug), version, QueryLimits.from_settings(settings))


@router.get(
    _VERSION + "/export",
    response_model=PortableVersion,
    responses=error_responses(*_ERRORS, _MISSING, *STORE_ERRORS),
)
def export_version(slug: str, version: int, stores: StoreDep, _: Auditor) -> PortableVersion:
    """The version as a portable document (`format_version` 1) another instance can import."""
    return PortableVersion(**portable.export_version(stores, _existing(stores, slug), version))


@router.post(
    "/pipelines/import-version",
    response_model=VersionImported,
    status_code=201,
    responses=error_responses(
        *_ERRORS,
        (400, "invalid_json: the body is not JSON"),
        (
            422,
            "unsupported_format_version (newer than this server's), invalid_format_version, "
            "invalid_pipeline, invalid_slug, or the config does not validate (`details` every error)",
        ),
        *STORE_ERRORS,
    ),
)
def import_version(
    stores: StoreDep,
    reloader: ReloaderDep,
    actor: Engineer,
    document: Annotated[dict[str, Any], Body(description="A document of `GET …/versions/<n>/export`")],
    name: Annotated[str | None, Query(description="Slug to import as; default the document's `name`")] = None,
) -> VersionImported:
    """Create a pipeline from a portable version, or add it to an existing one as a development version."""
    visibility.ensure_visible(stores, actor, name or str(document.get("name", "")))
    imported = portable.import_version(stores, document, name=name, author=actor.name)
    if imported.created:
        visibility.claim(stores, actor, imported.pipeline)
        reloader.request()
    return VersionImported(pipeline=imported.pipeline, created=imported.created, version=imported.version)
