"""Karet's worker endpoints: health, config validation, and a synchronous pipeline run."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from karet_api.deps import InstanceDep, SettingsDep, StoreDep, require_worker_token
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import ErrorBody, Ok, Responses
from karet_api.schemas.worker import WorkerRunRequest, WorkerRunResult
from karet_api.services import validation
from karet_api.services.runs import run_pipeline_to_end
from karet_defs.catalog import slug_from_pipeline_prefix
from karet_defs.config.validate import load_pipeline
from karet_defs.orchestration.jobs import NOTHING_PUBLISHED

router = APIRouter(tags=["worker"], route_class=CappedJsonRoute)
_errors: Responses = {
    401: {"model": ErrorBody, "description": "missing or invalid bearer token"},
    413: {"model": ErrorBody, "description": "payload_too_large: body over 5 MiB"},
    422: {
        "model": ErrorBody,
        "description": "invalid config: `error` is the first error's kind, `details` all",
    },
}


@router.get("/health", response_class=PlainTextResponse)
def health() -> str:
    return "ok"


@router.post(
    "/config/validate",
    response_model=Ok,
    responses=_errors,
    dependencies=[Depends(require_worker_token)],
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}
    },
)
async def validate_config(request: Request) -> Ok:
    """Validate a candidate pipeline.json: 200 `{"ok": true}` or 422 with every error in `details`."""
    load_pipeline(await validation.read_config_body(request))
    return Ok()


@router.post(
    "/jobs/run",
    response_model=WorkerRunResult,
    responses={
        400: {"model": ErrorBody, "description": "invalid_prefix or config read/parse/validation failure"},
        401: _errors[401],
        404: {"model": ErrorBody, "description": "pipeline_config_not_found"},
    },
    dependencies=[Depends(require_worker_token)],
)
async def run_job(
    request: WorkerRunRequest, stores: StoreDep, instance: InstanceDep, settings: SettingsDep
) -> WorkerRunResult:
    """Run a whole pipeline as one Dagster run and answer when it ends."""
    slug = slug_from_pipeline_prefix(request.pipeline_prefix)
    outcome = await run_pipeline_to_end(
        stores, instance, slug, trigger="api", clean_run=request.clean_run, settings=settings
    )
    errors = list(outcome.errors)
    if outcome.failure and not outcome.failure.startswith(NOTHING_PUBLISHED):
        # A run failed for nothing but its errors answers as Karet's worker did: with those errors alone.
        errors.append(f"run failed: {outcome.failure}")
    return WorkerRunResult(
        job_id=outcome.run_id,
        partitions_written=outcome.partitions_written,
        files_processed=outcome.files_processed,
        errors=errors,
    )
