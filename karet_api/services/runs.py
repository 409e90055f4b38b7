"""Starting pipeline runs for the API: checks that fail fast, then a real Dagster run off the event loop."""

import uuid

import dagster as dg
from starlette.concurrency import run_in_threadpool

from karet_defs.catalog import read_pipeline
from karet_defs.orchestration.launch import RunOutcome, execute_pipeline_run
from karet_defs.store.base import Stores


async def run_pipeline_to_end(
    stores: Stores, instance: dg.DagsterInstance, slug: str, *, trigger: str, clean_run: bool
) -> RunOutcome:
    """Check the config (raising the documented 4xx errors), then execute the job and wait for its end."""
    pipeline = read_pipeline(stores, slug)
    if not pipeline.analytic_tables:
        # A pipeline without tables has no job to run (Dagster refuses empty selections); nothing to write.
        return RunOutcome(str(uuid.uuid4()), True, 0, 0, [], None)
    return await run_in_threadpool(execute_pipeline_run, instance, slug, trigger=trigger, clean_run=clean_run)
