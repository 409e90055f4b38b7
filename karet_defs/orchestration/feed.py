"""Karet's events, read from Dagster's event log: job changes, raw files observed, runs, table versions.

There is no second log: an event's offset is the storage id of the Dagster event it comes from, read with
``get_logs_for_all_runs_by_log_id`` after a cursor. On SQLite, whose events live in one file per run, that
reads the cross-run index, which holds exactly the kinds used here (asset events, asset check events and
run status changes) in one id sequence; on Postgres it reads the one event table and the rest is skipped.

What each Dagster event becomes (``jobs`` is the job-change stream of SSE and the WebSocket; ``files``,
``runs`` and ``tables`` are the topics one consumes):

- the run's first ``ASSET_MATERIALIZATION_PLANNED`` (written when the run is created; ``RUN_ENQUEUED`` for a
  run that plans none) → ``jobs/queued``;
- ``RUN_START`` → ``jobs/started`` and ``runs/started``; ``RUN_SUCCESS`` → ``jobs/completed``,
  ``RUN_FAILURE`` and ``RUN_CANCELED`` → ``jobs/failed``, each also ``runs/ended`` with the run's counters;
- a progress observation (``orchestration.progress``) → ``jobs/progress``;
- an observation of a raw-files asset (the sensor's, when what it lists under a source changed: a file
  arrived, changed or was removed) → ``files/changed``;
- a table materialization (one per new Delta version) → ``tables/version``.

A run is a job when it is tagged ``karet/pipeline``, as in the job list.

On a storage with concurrent writers (Postgres), an id is taken before its transaction commits, so a
smaller id can become visible after a larger one; a reader there stops short of events younger than
``SETTLE_SECONDS`` and reads them on its next pass, so a cursor never jumps over an event still committing.
SQLite serialises its writers and needs no such wait.
"""

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    ConsolidatedSqliteEventLogStorage,
)

from karet_defs.orchestration.jobs import (
    TAG_ERRORS,
    TAG_FILES_PROCESSED,
    TAG_PARTITIONS_WRITTEN,
    TAG_PIPELINE,
    TAG_TRIGGER,
)
from karet_defs.orchestration.launch import failure_message
from karet_defs.orchestration.progress import progress_of

JOBS = "jobs"
TOPICS = ("files", "runs", "tables")
PAGE = 1000
SETTLE_SECONDS = 1.0
_RUNS_CACHED = 2048
_ET = dg.DagsterEventType
_ENDED = {_ET.RUN_SUCCESS: "completed", _ET.RUN_FAILURE: "failed", _ET.RUN_CANCELED: "failed"}


@dataclass(frozen=True)
class FeedEvent:
    offset: int  # the storage id of the Dagster event
    topic: str
    kind: str
    pipeline: str
    timestamp: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class _RunFacts:
    pipeline: str | None
    trigger: str | None
    first_planned: dg.AssetKey | None


class FeedReader:
    """Turns event-log records into ``FeedEvent``s; remembers what it needs of recent runs."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._runs: OrderedDict[str, _RunFacts] = OrderedDict()
        self._lock = threading.Lock()
        serial = (SqliteEventLogStorage, ConsolidatedSqliteEventLogStorage)
        self.settle = 0.0 if isinstance(instance.event_log_storage, serial) else SETTLE_SECONDS

    def latest(self) -> int:
        """The greatest storage id now in the log (0 when empty)."""
        return self.instance.event_log_storage.get_maximum_record_id() or 0

    def read(self, after: int, limit: int = PAGE) -> tuple[list[FeedEvent], int]:
        """Events of the next ``limit`` records after storage id ``after``, and the id read up to."""
        entries = self.instance.event_log_storage.get_logs_for_all_runs_by_log_id(
            after_cursor=after, limit=limit
        )
        if self.settle:
            settled_before = time.time() - self.settle
            young = [i for i, entry in entries.items() if entry.timestamp > settled_before]
            entries = {i: entry for i, entry in entries.items() if not young or i < young[0]}
        events = [
            event for storage_id, entry in entries.items() for event in self.translate(storage_id, entry)
        ]
        return events, max(entries, default=after)

    def translate(self, storage_id: int, entry: dg.EventLogEntry) -> list[FeedEvent]:
        """The Karet events one Dagster event becomes (see the module docstring); most become none."""
        kind = entry.dagster_event_type
        key = entry.dagster_event.asset_key if entry.dagster_event is not None else None

        def event(topic: str, name: str, pipeline: str, payload: dict[str, Any]) -> FeedEvent:
            return FeedEvent(storage_id, topic, name, pipeline, entry.timestamp, payload)

        if kind == _ET.ASSET_OBSERVATION and key is not None:
            progress = progress_of(entry)
            if progress is not None:
                facts = self._facts(entry.run_id)
                pipeline = facts.pipeline or key.path[0]
                return [
                    event(
                        JOBS,
                        "progress",
                        pipeline,
                        self._job(entry.run_id, pipeline, facts, progress=progress.to_dict()),
                    )
                ]
            if len(key.path) == 3 and key.path[1] == "raw":
                return [event("files", "changed", key.path[0], _files_payload(key, entry))]
            return []
        if kind == _ET.ASSET_MATERIALIZATION and key is not None and len(key.path) == 2:
            payload = _table_payload(key, entry)
            return [event("tables", "version", key.path[0], payload)] if payload else []
        if kind not in (_ET.ASSET_MATERIALIZATION_PLANNED, _ET.RUN_ENQUEUED, _ET.RUN_START, *_ENDED):
            return []
        facts = self._facts(entry.run_id, refresh=kind in _ENDED or kind == _ET.RUN_START)
        if kind == _ET.ASSET_MATERIALIZATION_PLANNED or kind == _ET.RUN_ENQUEUED:
            queued_pipeline = facts.pipeline or (key.path[0] if key is not None else None)
            if queued_pipeline is None or key != facts.first_planned:
                return []
            queued = self._job(entry.run_id, queued_pipeline, facts, status="scheduled")
            return [event(JOBS, "queued", queued_pipeline, queued)]
        if facts.pipeline is None:
            return []
        if kind == _ET.RUN_START:
            started = self._job(entry.run_id, facts.pipeline, facts, status="running")
            return [
                event(JOBS, "started", facts.pipeline, started),
                event("runs", "started", facts.pipeline, started),
            ]
        ended = self._ended(entry.run_id, facts, _ENDED[kind])
        return [
            event(JOBS, ended["status"], facts.pipeline, ended),
            event("runs", "ended", facts.pipeline, ended),
        ]

    def _job(self, run_id: str, pipeline: str, facts: _RunFacts, **extra: Any) -> dict[str, Any]:
        return {"job_id": run_id, "pipeline": pipeline, "trigger": facts.trigger, **extra}

    def _ended(self, run_id: str, facts: _RunFacts, status: str) -> dict[str, Any]:
        run = self.instance.get_run_by_id(run_id)
        tags = run.tags if run is not None else {}
        payload = self._job(run_id, facts.pipeline or "", facts, status=status)
        payload.update(
            partitions_written=_int(tags.get(TAG_PARTITIONS_WRITTEN)),
            files_processed=_int(tags.get(TAG_FILES_PROCESSED)),
            errors=json.loads(tags.get(TAG_ERRORS, "[]")),
            error=failure_message(self.instance, run_id) if status == "failed" else None,
        )
        return payload

    def _facts(self, run_id: str, *, refresh: bool = False) -> _RunFacts:
        with self._lock:
            facts = self._runs.get(run_id)
            if facts is not None and not (refresh and facts.pipeline is None):
                self._runs.move_to_end(run_id)
                return facts
        run = self.instance.get_run_by_id(run_id) if run_id else None
        planned = (
            self.instance.get_records_for_run(
                run_id, of_type=_ET.ASSET_MATERIALIZATION_PLANNED, ascending=True, limit=1
            ).records
            if run_id
            else []
        )
        first = planned[0].event_log_entry.dagster_event if planned else None
        facts = _RunFacts(
            pipeline=run.tags.get(TAG_PIPELINE) if run is not None else None,
            trigger=run.tags.get(TAG_TRIGGER) if run is not None else None,
            first_planned=first.asset_key if first is not None else None,
        )
        with self._lock:
            self._runs[run_id] = facts
            while len(self._runs) > _RUNS_CACHED:
                self._runs.popitem(last=False)
        return facts


def _files_payload(key: dg.AssetKey, entry: dg.EventLogEntry) -> dict[str, Any]:
    observation = entry.asset_observation
    metadata = observation.metadata if observation is not None else {}
    return {
        "pipeline": key.path[0],
        "source": key.path[2],
        "file_count": _value(metadata.get("file_count")),
        "total_bytes": _value(metadata.get("total_bytes")),
        "newest_file": _value(metadata.get("newest_file")),
        "last_modified": _value(metadata.get("last_modified")),
    }


def _table_payload(key: dg.AssetKey, entry: dg.EventLogEntry) -> dict[str, Any] | None:
    materialization = entry.asset_materialization
    metadata = materialization.metadata if materialization is not None else {}
    if "delta_version" not in metadata:
        return None
    return {
        "pipeline": key.path[0],
        "table": key.path[1],
        "version": _value(metadata["delta_version"]),
        "rows_added": _value(metadata.get("rows_written")),
        "rows_removed": _value(metadata.get("rows_removed")),
        "row_count": _value(metadata.get("dagster/row_count")),
        "job_id": entry.run_id or None,
    }


def _value(entry: dg.MetadataValue | None) -> Any:
    return entry.value if entry is not None else None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None
