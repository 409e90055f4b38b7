"""Jobs of a pipeline: Dagster runs in Karet's record shape; starting one returns at once.

Starting executes the run in the API process on the embedded default and submits it to Dagster's queue
otherwise (``KARET_DEPLOYMENT``, see ``services.runs``); either way the history is read from run storage.
"""

from typing import Annotated

from fastapi import APIRouter, Query

from karet_api.deps import InstanceDep, SettingsDep, StoreDep
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import error_responses
from karet_api.schemas.jobs import JobCreated, JobList
from karet_api.services.jobs import get_job, list_jobs
from karet_api.services.runs import start_run
from karet_defs.catalog import read_pipeline
from karet_defs.errors import NotFound, Unprocessable

router = APIRouter(prefix="/api", tags=["jobs"], route_class=CappedJsonRoute)


@router.get("/p/{slug}/jobs", response_model=JobList, responses=error_responses((401, "not signed in")))
def jobs_of_pipeline(
    slug: str,
    instance: InstanceDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobList:
    """The pipeline's jobs, newest first (runs tagged `karet/pipeline=<slug>`)."""
    return JobList(jobs=list_jobs(instance, slug, limit=limit, orphan_after=settings.orphan_after_seconds))


@router.post(
    "/p/{slug}/jobs",
    response_model=JobCreated,
    responses=error_responses(
        (400, "the stored config cannot be read, parsed or validated"),
        (401, "not signed in"),
        (404, "pipeline_config_not_found"),
        (422, "no_tables: the pipeline has no analytic table to run"),
        (500, "dagster_unavailable: the Dagster webserver did not accept the run (queued deployments)"),
    ),
)
def start_job(
    slug: str,
    stores: StoreDep,
    instance: InstanceDep,
    settings: SettingsDep,
    clean: Annotated[
        bool, Query(description="`true`: the run rebuilds every table from all raw files")
    ] = False,
) -> JobCreated:
    """Start a run of the whole pipeline and answer at once with its `running` record."""
    if not read_pipeline(stores, slug).analytic_tables:
        raise Unprocessable(f"pipeline `{slug}` has no analytic tables to run", code="no_tables")
    run_id = start_run(instance, settings, slug, trigger="manual", clean_run=clean)
    record = get_job(instance, run_id, orphan_after=settings.orphan_after_seconds)
    assert record is not None
    return JobCreated(job=record.model_copy(update={"status": "running"}))


@router.get(
    "/p/{slug}/jobs/{job_id}",
    response_model=JobCreated,
    responses=error_responses((401, "not signed in"), (404, "job_not_found")),
)
def job_detail(slug: str, job_id: str, instance: InstanceDep, settings: SettingsDep) -> JobCreated:
    """One job of the pipeline."""
    record = get_job(instance, job_id, orphan_after=settings.orphan_after_seconds)
    if record is None or record.pipeline != slug:
        raise NotFound(f"no job {job_id} in pipeline {slug}", code="job_not_found")
    return JobCreated(job=record)
