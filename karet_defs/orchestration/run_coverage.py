"""Which raw-file versions runs have covered, shared by the raw-files sensor and the S3 event webhook.

Every run lists and reads *all* files under its pipeline's prefixes, so a version is covered by any run
started after it became visible. Both triggers record what they covered in Dagster's key-value store
(``karet/coverage/<webhook|sensor>/<slug>``, each a ``ChangeCursor``, bounded the same way): the webhook
when the run it starts is created, the sensor when it asks for one. Records are read-modify-written without
a cross-process lock: a lost update only drops a claim, which can cost one extra run, never a missed file.
Both triggers also hold back while a run of the pipeline is queued or running (``active_run``), so this
module keeps the rule for "in flight" as well: a run whose process died, or that has been silent for longer
than the orphan rule allows, no longer holds its pipeline.
"""

import threading
import time

import dagster as dg

from karet_defs.orchestration.jobs import TAG_PIPELINE
from karet_defs.orchestration.liveness import dead_process, fail_dead_runs
from karet_defs.store.changes import ChangeCursor

WEBHOOK = "webhook"
SENSOR = "sensor"
_ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
_FINISHED_STATUSES = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def coverage_key(trigger: str, slug: str) -> str:
    return f"karet/coverage/{trigger}/{slug}"


def read_coverage(instance: dg.DagsterInstance, trigger: str, slug: str) -> ChangeCursor:
    """The versions runs started by ``trigger`` have covered."""
    key = coverage_key(trigger, slug)
    return ChangeCursor.from_json(instance.daemon_cursor_storage.get_cursor_values({key}).get(key))


def write_coverage(instance: dg.DagsterInstance, trigger: str, slug: str, cursor: ChangeCursor) -> None:
    instance.daemon_cursor_storage.set_cursor_values({coverage_key(trigger, slug): cursor.to_json()})


_claim_lock = threading.Lock()


def claim_for_webhook(instance: dg.DagsterInstance, slug: str, claim: ChangeCursor) -> None:
    """Record that a webhook run, just created, covers these versions (and every older visible one)."""
    if claim.newest_stamp is None:
        return
    with _claim_lock:
        write_coverage(instance, WEBHOOK, slug, read_coverage(instance, WEBHOOK, slug).merge(claim))


def active_run(instance: dg.DagsterInstance, slug: str, *, stale_after: float) -> str | None:
    """The id of a queued or running run of the pipeline, ignoring runs silent for over ``stale_after`` s
    (runs whose process died are failed first)."""
    fail_dead_runs(instance, slug)
    records = instance.get_run_records(
        dg.RunsFilter(tags={TAG_PIPELINE: slug}, statuses=_ACTIVE_STATUSES), limit=5
    )
    return next((r.dagster_run.run_id for r in records if _is_active(instance, r, stale_after)), None)


def run_is_active(instance: dg.DagsterInstance, run_id: str, *, stale_after: float) -> bool:
    """Whether one run is still queued or running (and not silent for over ``stale_after`` s)."""
    records = instance.get_run_records(dg.RunsFilter(run_ids=[run_id]), limit=1)
    return bool(records) and _is_active(instance, records[0], stale_after)


def _is_active(instance: dg.DagsterInstance, record: dg.RunRecord, stale_after: float) -> bool:
    # A run whose process died keeps its status forever: after ``stale_after`` s of silence (the orphan
    # rule of the job history) it no longer holds the pipeline. A queued run is legitimately silent.
    status = record.dagster_run.status
    if status not in _ACTIVE_STATUSES or dead_process(record.dagster_run) is not None:
        return False
    return status == dg.DagsterRunStatus.QUEUED or _silent_for(instance, record) <= stale_after


def ended_within(instance: dg.DagsterInstance, slug: str, seconds: float) -> bool:
    """Whether the pipeline's newest finished run ended less than ``seconds`` ago."""
    if seconds <= 0:
        return False
    records = instance.get_run_records(
        dg.RunsFilter(tags={TAG_PIPELINE: slug}, statuses=_FINISHED_STATUSES), limit=1
    )
    if not records:
        return False
    ended = records[0].end_time or records[0].update_timestamp.timestamp()
    return time.time() - ended < seconds


def _silent_for(instance: dg.DagsterInstance, record: dg.RunRecord) -> float:
    events = instance.get_records_for_run(record.dagster_run.run_id, ascending=False, limit=1).records
    last = events[0].timestamp if events else record.update_timestamp.timestamp()
    return time.time() - last
