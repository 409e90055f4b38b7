"""Starting pipeline runs for the API: checks that fail fast, then a real Dagster run off the event loop.

How a run starts follows ``KARET_DEPLOYMENT``: on the embedded default the API executes it in its own
process (no queue round trip, 0.7 s for a small pipeline); otherwise it is submitted to the webserver, so
Dagster's queue, its one-run-per-pipeline limit and its run launcher (Celery, Kubernetes) apply, and the
outcome is read back from run storage like any other run.
"""

import asyncio
import uuid
from typing import Any

import dagster as dg
from starlette.concurrency import run_in_threadpool

from karet_defs.catalog import read_pipeline
from karet_defs.orchestration.launch import (
    RunOutcome,
    create_job_run,
    execute_pipeline_run,
    execute_prepared_run,
    outcome_of_run,
    start_job_run,
    start_pipeline_run,
    submit_job_run,
    submit_pipeline_run,
)
from karet_defs.settings import Settings
from karet_defs.store.base import Stores

_POLL_SECONDS = 0.25


def start_run(
    instance: dg.DagsterInstance, settings: Settings, slug: str, *, trigger: str, clean_run: bool
) -> str:
    """Start a run of the pipeline's job and return its run id at once."""
    if settings.queues_runs:
        return submit_pipeline_run(settings.dagster_url, slug, trigger=trigger, clean_run=clean_run)
    prepared, _ = start_pipeline_run(instance, slug, trigger=trigger, clean_run=clean_run)
    return prepared.run_id


def start_job(
    instance: dg.DagsterInstance,
    settings: Settings,
    job_name: str,
    *,
    run_config: dict[str, Any],
    tags: dict[str, str],
) -> str:
    """Start a run of any job of the definitions (as ``start_run`` does) and return its run id at once."""
    if settings.queues_runs:
        return submit_job_run(settings.dagster_url, job_name, run_config=run_config, tags=tags)
    return start_job_run(instance, job_name, run_config=run_config, tags=tags).run_id


async def run_pipeline_to_end(
    stores: Stores,
    instance: dg.DagsterInstance,
    slug: str,
    *,
    trigger: str,
    clean_run: bool,
    settings: Settings,
) -> RunOutcome:
    """Check the config (raising the documented 4xx errors), then execute the job and wait for its end."""
    pipeline = read_pipeline(stores, slug)
    if not pipeline.analytic_tables:
        # A pipeline without tables has no job to run (Dagster refuses empty selections); nothing to write.
        return RunOutcome(str(uuid.uuid4()), True, 0, 0, [], None)
    if not settings.queues_runs:
        return await run_in_threadpool(
            execute_pipeline_run, instance, slug, trigger=trigger, clean_run=clean_run
        )
    run_id = await run_in_threadpool(
        start_run, instance, settings, slug, trigger=trigger, clean_run=clean_run
    )
    while not await run_in_threadpool(_finished, instance, run_id):
        await asyncio.sleep(_POLL_SECONDS)
    return await run_in_threadpool(outcome_of_run, instance, run_id)


async def run_job_to_end(
    instance: dg.DagsterInstance,
    settings: Settings,
    job_name: str,
    *,
    run_config: dict[str, Any],
    tags: dict[str, str],
) -> str:
    """Execute any job of the definitions (or submit it and wait) and return the finished run's id."""
    if not settings.queues_runs:
        prepared = await run_in_threadpool(
            create_job_run, instance, job_name, run_config=run_config, tags=tags
        )
        await run_in_threadpool(execute_prepared_run, instance, prepared)
        return prepared.run_id
    run_id = await run_in_threadpool(
        submit_job_run, settings.dagster_url, job_name, run_config=run_config, tags=tags
    )
    while not await run_in_threadpool(_finished, instance, run_id):
        await asyncio.sleep(_POLL_SECONDS)
    return run_id


def _finished(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.is_finished
