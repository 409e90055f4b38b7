"""Executing a pipeline job as a real Dagster run in the calling process, recorded in the instance.

The job is reconstructed from this package's definitions module (not built ad hoc), so a run started here is
the same job, with the same tags and code origin, as one started from the Dagster UI.
"""

import json
import os
import threading
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.execution.api import execute_run

from karet_defs.orchestration.jobs import (
    TAG_ERRORS,
    TAG_FILES_PROCESSED,
    TAG_PARTITIONS_WRITTEN,
    dagster_name,
    run_tags,
)

DEFINITIONS_MODULE = "karet_defs.definitions"


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    partitions_written: int
    files_processed: int
    errors: list[str]
    failure: str | None


def _repository() -> ReconstructableRepository:
    return ReconstructableRepository.for_module(DEFINITIONS_MODULE, "defs", working_directory=os.getcwd())


@dataclass(frozen=True)
class PreparedRun:
    """A run recorded in the instance (status NOT_STARTED) and the job that will execute it."""

    job: ReconstructableJob
    run: dg.DagsterRun

    @property
    def run_id(self) -> str:
        return self.run.run_id


def create_pipeline_run(
    instance: dg.DagsterInstance, slug: str, *, trigger: str, clean_run: bool = False
) -> PreparedRun:
    """Record a run of the pipeline's job with Karet's tags; it shows in the UI and the API at once."""
    job = _repository().get_reconstructable_job(dagster_name(slug))
    job_def = job.get_definition()
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config={"ops": {f"run_{dagster_name(slug)}": {"config": {"clean_run": clean_run}}}},
        tags={**job_def.run_tags, **run_tags(slug, trigger=trigger, clean_run=clean_run)},
        job_code_origin=job.get_python_origin(),
    )
    return PreparedRun(job, run)


def execute_prepared_run(instance: dg.DagsterInstance, prepared: PreparedRun) -> RunOutcome:
    """Execute a recorded run in this process (in-process executor) and return its Karet summary."""
    execute_run(prepared.job, prepared.run, instance, raise_on_error=False)
    return outcome_of_run(instance, prepared.run_id)


def execute_pipeline_run(
    instance: dg.DagsterInstance, slug: str, *, trigger: str, clean_run: bool = False
) -> RunOutcome:
    """Run the pipeline's job to completion and read its summary back from the run's tags."""
    return execute_prepared_run(
        instance, create_pipeline_run(instance, slug, trigger=trigger, clean_run=clean_run)
    )


def start_pipeline_run(
    instance: dg.DagsterInstance, slug: str, *, trigger: str, clean_run: bool = False
) -> tuple[PreparedRun, threading.Thread]:
    """Record a run and execute it on a background thread; return at once."""
    prepared = create_pipeline_run(instance, slug, trigger=trigger, clean_run=clean_run)
    worker = threading.Thread(
        target=execute_prepared_run,
        args=(instance, prepared),
        name=f"karet-run-{prepared.run_id}",
        daemon=True,
    )
    worker.start()
    return prepared, worker


def outcome_of_run(instance: dg.DagsterInstance, run_id: str) -> RunOutcome:
    """The Karet summary of a finished run, from the tags its asset body wrote and its failure event."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(run_id)
    tags = run.tags
    failure = None
    if run.status != dg.DagsterRunStatus.SUCCESS:
        failure = failure_message(instance, run_id) or f"run ended {run.status.value}"
    return RunOutcome(
        run_id=run_id,
        success=run.status == dg.DagsterRunStatus.SUCCESS,
        partitions_written=int(tags.get(TAG_PARTITIONS_WRITTEN, "0")),
        files_processed=int(tags.get(TAG_FILES_PROCESSED, "0")),
        errors=json.loads(tags.get(TAG_ERRORS, "[]")),
        failure=failure,
    )


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The description of the step failure that ended a run, if any."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE, ascending=False, limit=1
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.step_failure_data if event else None
        if data and data.user_failure_data and data.user_failure_data.description:
            return data.user_failure_data.description
        if data and data.error:
            return data.error.message.strip()
    return None
