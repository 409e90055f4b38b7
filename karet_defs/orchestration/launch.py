"""Starting a pipeline job as a real Dagster run: executed in the calling process, or submitted to the queue.

The job is reconstructed from this package's definitions module (not built ad hoc), so a run started here is
the same job, with the same tags and code origin, as one started from the Dagster UI. Outside the embedded
default, ``submit_pipeline_run`` hands the run to the webserver instead, so Dagster's queue (one run per
pipeline) and its run launcher (Celery workers, Kubernetes pods) execute it.
"""

import json
import os
import threading
import time
import weakref
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.execution.api import execute_run
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from karet_defs.errors import KaretError
from karet_defs.orchestration.jobs import (
    TAG_ERRORS,
    TAG_FILES_PROCESSED,
    TAG_PARTITIONS_WRITTEN,
    dagster_name,
    launch_tags,
    run_tags,
)
from karet_defs.orchestration.liveness import fail_dead_runs, process_tag

DEFINITIONS_MODULE = "karet_defs.definitions"
LOCATION_NAME = "karet"


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


def pipeline_run_config(slug: str, *, clean_run: bool) -> dict[str, Any]:
    """The run config of a pipeline job: the tables' multi-asset takes ``clean_run``."""
    return {"ops": {f"run_{dagster_name(slug)}": {"config": {"clean_run": clean_run}}}}


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
    """Record a run of the pipeline's job with Karet's tags; it shows in the UI and the API at once.

    A run of the pipeline whose process died is failed first: it would otherwise keep the pipeline's pool
    slot and hold this run back."""
    fail_dead_runs(instance, slug)
    return create_job_run(
        instance,
        dagster_name(slug),
        run_config=pipeline_run_config(slug, clean_run=clean_run),
        tags=run_tags(slug, trigger=trigger, clean_run=clean_run),
    )


def create_job_run(
    instance: dg.DagsterInstance, job_name: str, *, run_config: dict[str, Any], tags: dict[str, str]
) -> PreparedRun:
    """Record a run of any job of the definitions module, its definition's tags overridden by ``tags``.

    This process will execute it: the run names it, so a run left waiting by a crash can be taken up again.
    """
    job = _repository().get_reconstructable_job(job_name)
    job_def = job.get_definition()
    tags = {**job_def.run_tags, **tags}
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags={**tags, **launch_tags(tags), **process_tag()},
        job_code_origin=job.get_python_origin(),
    )
    return PreparedRun(job, run)


def resume_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> threading.Thread:
    """Execute, on a background thread of this process, a recorded run that never started."""
    prepared = PreparedRun(_repository().get_reconstructable_job(run.job_name), run)
    return _start_background(instance, prepared)


# Dagster reconfigures logging (``logging.config.dictConfig``) each time a run starts, holding logging's
# module lock while it takes every handler's lock; a run logging an event on another thread holds its
# handler's lock while its storage write needs the module lock, so two runs executing at once in one process
# can deadlock it (the API included). Runs executed in this process therefore take turns; Dagster's queue
# and pools still order them against runs of other processes.
_IN_PROCESS_RUNS = threading.Lock()


def execute_prepared_run(instance: dg.DagsterInstance, prepared: PreparedRun) -> RunOutcome:
    """Execute a recorded run in this process (in-process executor) and return its Karet summary."""
    with _IN_PROCESS_RUNS:
        instance.add_run_tags(prepared.run_id, process_tag())
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
    return prepared, _start_background(instance, prepared)


def start_job_run(
    instance: dg.DagsterInstance, job_name: str, *, run_config: dict[str, Any], tags: dict[str, str]
) -> PreparedRun:
    """Record a run of any job of the definitions module and execute it on a background thread."""
    prepared = create_job_run(instance, job_name, run_config=run_config, tags=tags)
    _start_background(instance, prepared)
    return prepared


def _start_background(instance: dg.DagsterInstance, prepared: PreparedRun) -> threading.Thread:
    worker = threading.Thread(
        target=execute_prepared_run,
        args=(instance, prepared),
        name=f"karet-run-{prepared.run_id}",
        daemon=True,
    )
    with _background_lock:
        _background.add(worker)
    worker.start()
    return worker


_background: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()
_background_lock = threading.Lock()


def wait_for_background_runs(timeout: float) -> None:
    """Let runs started in this process finish (bounded), so a shutdown never cuts one off mid-publish."""
    deadline = time.monotonic() + timeout
    with _background_lock:
        workers = list(_background)
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))


def submit_pipeline_run(dagster_url: str, slug: str, *, trigger: str, clean_run: bool = False) -> str:
    """Queue a run of the pipeline's job through the webserver's GraphQL API; return its run id at once.

    A job the webserver does not know yet (a pipeline created a moment ago, its reload still running) gets
    one synchronous reload of the code location and a second try.
    """
    return submit_job_run(
        dagster_url,
        dagster_name(slug),
        run_config=pipeline_run_config(slug, clean_run=clean_run),
        tags=run_tags(slug, trigger=trigger, clean_run=clean_run),
        what=f"the run of `{slug}`",
    )


def submit_job_run(
    dagster_url: str, job_name: str, *, run_config: dict[str, Any], tags: dict[str, str], what: str = ""
) -> str:
    """Queue a run of any job through the webserver (see ``submit_pipeline_run``); return its run id."""
    what = what or f"the run of `{job_name}`"
    if not dagster_url:
        raise KaretError(
            "KARET_DAGSTER_URL must name the Dagster webserver when runs go through Dagster's queue",
            code="dagster_unavailable",
        )
    try:
        client = _graphql_client(dagster_url)
        submit = partial(
            client.submit_job_execution,
            job_name,
            repository_location_name=LOCATION_NAME,
            repository_name=SINGLETON_REPOSITORY_NAME,
            run_config=run_config,
            tags={**tags, **launch_tags(tags)},
        )
        try:
            return submit()
        except DagsterGraphQLClientError as exc:
            if exc.args[:1] not in (("PipelineNotFoundError",), ("JobNotFoundError",)):
                raise
            client.reload_repository_location(LOCATION_NAME)
            return submit()
    except DagsterGraphQLClientError as exc:
        # The client's messages can carry the whole query text; first lines say what went wrong.
        reason = ": ".join(_first_line(a) for a in (*exc.args, exc.__cause__) if a and str(a).strip())
        raise KaretError(
            f"the Dagster webserver did not accept {what}: {reason}", code="dagster_unavailable"
        ) from exc


def _first_line(value: object) -> str:
    return str(value).strip().splitlines()[0][:200]


def _graphql_client(dagster_url: str) -> DagsterGraphQLClient:
    url = urlparse(dagster_url)
    return DagsterGraphQLClient(
        url.hostname or "127.0.0.1",
        port_number=url.port,
        use_https=url.scheme == "https",
        path_prefix=url.path.rstrip("/"),
    )


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
    """The description of the step failure that ended a run, else the reason it was failed from outside
    (its process died, a monitor gave up on it), if any."""
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
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_FAILURE, ascending=False, limit=1
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event and event.message and not event.message.startswith("Execution of run for"):
            return event.message
    return None
