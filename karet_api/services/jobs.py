"""Karet job records read from Dagster run storage (no second job store).

A job is a run tagged ``karet/pipeline=<slug>``; its counters come from the tags the asset body writes.
Orphans are reconciled at read time, as Karet did: a run still running long after its last event is shown
failed, without touching Dagster's record.
"""

import json
import time
from datetime import UTC, datetime

import dagster as dg

from karet_api.schemas.jobs import JobProgress, JobRecord, JobStatus
from karet_defs.orchestration.jobs import (
    TAG_CONFIG_VERSION,
    TAG_ENVIRONMENT,
    TAG_ERRORS,
    TAG_FILE_ERRORS,
    TAG_FILES_PROCESSED,
    TAG_PARTITIONS_WRITTEN,
    TAG_PIPELINE,
    TAG_TRIGGER,
)
from karet_defs.orchestration.launch import failure_message
from karet_defs.orchestration.liveness import fail_dead_runs
from karet_defs.orchestration.progress import latest_progress

_STATUS: dict[dg.DagsterRunStatus, JobStatus] = {
    dg.DagsterRunStatus.QUEUED: "scheduled",
    dg.DagsterRunStatus.NOT_STARTED: "scheduled",
    dg.DagsterRunStatus.STARTING: "running",
    dg.DagsterRunStatus.STARTED: "running",
    dg.DagsterRunStatus.CANCELING: "running",
    dg.DagsterRunStatus.SUCCESS: "completed",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "failed",
}
ORPHAN_MESSAGE = "job abandoned (stuck in running for > {minutes} min)"


def iso_utc(timestamp: float | None) -> str | None:
    """Karet's timestamp format: ISO-8601 UTC with milliseconds and ``Z``."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def job_record(instance: dg.DagsterInstance, record: dg.RunRecord, *, orphan_after: float) -> JobRecord:
    """One Karet job record from one Dagster run record."""
    run = record.dagster_run
    tags = run.tags
    status: JobStatus = _STATUS.get(run.status, "failed")
    started = record.start_time or record.create_timestamp.timestamp()
    errors = json.loads(tags.get(TAG_ERRORS, "[]"))
    error = None
    completed_at = iso_utc(record.end_time)
    if status == "failed":
        error = failure_message(instance, run.run_id) or f"run {run.status.value.lower()}"
    elif status == "completed" and errors:
        written = tags.get(TAG_PARTITIONS_WRITTEN, "0")
        error = f"{written} partitions written, {len(errors)} error(s): {errors[0]}"
    elif status == "running" and _silent_for(instance, record) > orphan_after:
        status, completed_at = "failed", iso_utc(time.time())
        error = ORPHAN_MESSAGE.format(minutes=round(orphan_after / 60))
    return JobRecord(
        id=run.run_id,
        pipeline=tags.get(TAG_PIPELINE, ""),
        status=status,
        startedAt=iso_utc(started) or "",
        completedAt=completed_at,
        error=error,
        errors=errors,
        file_errors=json.loads(tags.get(TAG_FILE_ERRORS, "[]")),
        partitions_written=_int(tags.get(TAG_PARTITIONS_WRITTEN)),
        files_processed=_int(tags.get(TAG_FILES_PROCESSED)),
        trigger=tags.get(TAG_TRIGGER),
        config_version=_int(tags.get(TAG_CONFIG_VERSION)),
        environment=tags.get(TAG_ENVIRONMENT),
    )


def list_jobs(instance: dg.DagsterInstance, slug: str, *, limit: int, orphan_after: float) -> list[JobRecord]:
    """The pipeline's runs, newest first (runs whose process died are failed first)."""
    fail_dead_runs(instance, slug)
    records = instance.get_run_records(dg.RunsFilter(tags={TAG_PIPELINE: slug}), limit=limit)
    return [job_record(instance, r, orphan_after=orphan_after) for r in records]


def get_job(instance: dg.DagsterInstance, run_id: str, *, orphan_after: float) -> JobRecord | None:
    records = instance.get_run_records(dg.RunsFilter(run_ids=[run_id]), limit=1)
    if records and fail_dead_runs(instance, records[0].dagster_run.tags.get(TAG_PIPELINE)):
        records = instance.get_run_records(dg.RunsFilter(run_ids=[run_id]), limit=1)
    if not records:
        return None
    record = job_record(instance, records[0], orphan_after=orphan_after)
    progress = latest_progress(instance, run_id)
    if progress is not None:
        record.progress = JobProgress.model_validate(progress.to_dict())
    return record


def _silent_for(instance: dg.DagsterInstance, record: dg.RunRecord) -> float:
    events = instance.get_records_for_run(record.dagster_run.run_id, ascending=False, limit=1).records
    last = events[0].timestamp if events else record.update_timestamp.timestamp()
    return time.time() - last


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None
