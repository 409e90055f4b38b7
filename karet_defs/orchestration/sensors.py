"""The raw-files sensor of a pipeline, and the coverage records it shares with the S3 event webhook.

A tick lists the pipeline's source prefixes (baked in when the code location loads: no per-tick GET of
``pipeline.json``), compares them with its ``ChangeCursor`` (``karet_defs.store.changes``) and asks for at
most one run for the whole batch, ``run_key`` = digest of the batch's (key, ETag, stamp) versions. With no
cursor (a new pipeline) every existing file is new: they run once, on the first tick (pitfall 7); the
cursor lives in Dagster's instance, so a restart of the daemon re-runs nothing.

One run per file version: every run lists and reads *all* files under the prefixes, so a version is covered
by any run started after it became visible. Both triggers record what they covered in Dagster's key-value
store (``karet/coverage/<webhook|sensor>/<slug>``, each a ``ChangeCursor``, bounded the same way): the
webhook when the run it starts is created, the sensor when it asks for one. A tick drops versions the
webhook covered; the webhook drops events for versions either trigger covered (redeliveries, late events,
an API restart). The sensor ignores its *own* record on purpose: if the daemon dies between a tick and the
launch, the unchanged cursor makes the next tick ask again. A tick also waits (keeping its cursor) while a
run of the pipeline is queued or running, or ended less than ``RUN_END_GRACE_SECONDS`` ago: the webhook's
follow-up run is created the moment the current one ends, and its claims land just after. Records are
read-modify-written without a cross-process lock: a lost update only drops a claim, which can cost one
extra run, never a missed file.

A tick also observes each source's raw-files asset (file count, bytes, newest file) when what it listed
under that source differs from the last tick, so lineage shows when raw files last changed. The summaries'
digests ride in the tick's cursor beside the change cursor; an unchanged listing reports nothing.
"""

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dagster as dg

from karet_defs.config.models import FileRows, Pipeline
from karet_defs.engine.dimensions import DIMENSION_EXTENSIONS
from karet_defs.engine.read import SOURCE_EXTENSIONS
from karet_defs.orchestration.assets import source_key
from karet_defs.orchestration.jobs import TAG_PIPELINE, dagster_name, run_tags
from karet_defs.orchestration.liveness import dead_process, fail_dead_runs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectInfo, Stores
from karet_defs.store.changes import (
    ChangeCursor,
    Watch,
    batch_digest,
    detect_changes,
    list_watched,
    version_of,
)
from karet_defs.store.factory import build_stores
from karet_defs.store.s3 import S3Store

# The webhook and uploads start runs at once (`python -m bench.autorun`: rows readable ~0.3 s after an
# upload); the sensor is only the safety net for lost events and buckets without notifications, so a file
# missed by both waits at most ~3 min. Every tick costs the daemon a few SQLite writes (~29 ms) whatever the
# listing finds: with 200 idle pipelines the whole stack used 47 % of a core at 30 s, 10.9 % at 120 s and
# 9.1 % at 180 s (`python -m bench.idle`).
SENSOR_INTERVAL_SECONDS = 180
RUN_END_GRACE_SECONDS = 10.0
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


def sensor_name(slug: str) -> str:
    return f"{dagster_name(slug)}_raw_files"


def raw_files_watch(pipeline: Pipeline, slug: str) -> Watch:
    """The pipeline's source prefixes and the extensions its engine reads there, and the prefixes of its
    file-backed dimensions: a changed dimension CSV changes the rows of the tables using it."""
    sources = [(s.resolved_prefix(slug), SOURCE_EXTENSIONS[s.format]) for s in pipeline.source_containers]
    dimensions = [
        (d.rows.resolved_prefix(slug), DIMENSION_EXTENSIONS)
        for d in pipeline.dimensions
        if isinstance(d.rows, FileRows)
    ]
    return Watch(tuple(sources + dimensions))


def build_raw_files_sensor(
    pipeline: Pipeline,
    slug: str,
    store: StoreResource,
    *,
    minimum_interval_seconds: int = SENSOR_INTERVAL_SECONDS,
    grace_seconds: float = RUN_END_GRACE_SECONDS,
) -> dg.SensorDefinition:
    """A sensor asking for one run of the pipeline's job per batch of new or changed raw files.

    It starts RUNNING: "drop a CSV in the bucket and the tables update" must work without a click in the UI.
    ``store`` is bound when the definitions are built rather than declared as a resource: for a sensor with
    resources Dagster builds a ``DagsterInstance`` on every tick (about 28 ms of an idle tick's 30 ms, so
    most of the idle cost of 200 pipelines); this way an idle tick never touches the instance at all.
    """
    watch = raw_files_watch(pipeline, slug)
    sources = [
        (source.id, source.resolved_prefix(slug), SOURCE_EXTENSIONS[source.format])
        for source in pipeline.source_containers
    ]

    @dg.sensor(
        name=sensor_name(slug),
        job_name=dagster_name(slug),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New or changed raw files under {', '.join(watch.prefixes())} run pipeline `{slug}`",
    )
    def _raw_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        settings = store.settings()
        listed = {source_id: SourceFiles() for source_id, _, _ in sources}
        previous = ChangeCursor.from_json(context.cursor)
        changes = detect_changes(
            _tallied(list_watched(_stores_for(settings).lake, watch), sources, listed), previous
        )
        digests = {source_id: files.digest() for source_id, files in listed.items()}
        before = _listed_digests(context.cursor)
        observed = [
            files.observation(source_key(slug, source_id))
            for source_id, files in listed.items()
            if digests[source_id] != before.get(source_id)
        ]
        cursor = _tick_cursor(changes.cursor, digests)
        if not changes.changed:
            return dg.SensorResult(
                skip_reason="no new or changed raw files", cursor=cursor, asset_events=observed
            )
        covered = read_coverage(context.instance, WEBHOOK, slug)
        fresh = [info for info in changes.changed if not covered.covers(info)]
        if not fresh:
            reason = f"{len(changes.changed)} new or changed file(s), all covered by webhook runs"
            return dg.SensorResult(skip_reason=reason, cursor=cursor, asset_events=observed)
        busy = active_run(context.instance, slug, stale_after=settings.orphan_after_seconds)
        if busy is None and ended_within(context.instance, slug, grace_seconds):
            busy = "that just ended"
        if busy is not None:
            # Keep the old change cursor: the same files are looked at again once the pipeline is idle.
            return dg.SensorResult(
                skip_reason=f"{len(fresh)} new or changed file(s) wait for run {busy} of `{slug}`",
                cursor=_tick_cursor(previous, digests),
                asset_events=observed,
            )
        write_coverage(context.instance, SENSOR, slug, changes.cursor)
        context.log.info("%d new or changed file(s) for `%s`, e.g. %s", len(fresh), slug, fresh[0].key)
        request = dg.RunRequest(
            run_key=f"{len(fresh)}:{batch_digest(fresh)}", tags=run_tags(slug, trigger="sensor")
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor, asset_events=observed)

    return _raw_files


@dataclass
class SourceFiles:
    """What one tick listed under one source: how many raw files, their bytes, the newest one."""

    count: int = 0
    bytes: int = 0
    newest: ObjectInfo | None = None

    def add(self, info: ObjectInfo) -> None:
        self.count += 1
        self.bytes += info.size
        newest = self.newest
        if newest is None or (info.last_modified, info.key) > (newest.last_modified, newest.key):
            self.newest = info

    def digest(self) -> str:
        newest = "" if self.newest is None else f"{self.newest.key}\0{version_of(self.newest)}"
        return hashlib.sha256(f"{self.count}\0{self.bytes}\0{newest}".encode()).hexdigest()[:16]

    def observation(self, key: dg.AssetKey) -> dg.AssetObservation:
        metadata: dict[str, dg.RawMetadataValue] = {
            "file_count": dg.MetadataValue.int(self.count),
            "total_bytes": dg.MetadataValue.int(self.bytes),
        }
        if self.newest is not None:
            stamp = self.newest.last_modified.timestamp()
            metadata["newest_file"] = dg.MetadataValue.path(self.newest.key)
            metadata["last_modified"] = dg.MetadataValue.timestamp(stamp)
            # Dagster's freshness checks read an observed asset's update time from this key.
            metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(stamp)
        return dg.AssetObservation(asset_key=key, metadata=metadata)


def _tallied(
    infos: Iterable[ObjectInfo],
    sources: list[tuple[str, str, tuple[str, ...]]],
    listed: dict[str, SourceFiles],
) -> Iterator[ObjectInfo]:
    """Pass a listing through, adding each file to the summary of every source that reads it."""
    for info in infos:
        lowered = info.key.lower()
        for source_id, prefix, extensions in sources:
            if info.key.startswith(prefix) and lowered.endswith(extensions):
                listed[source_id].add(info)
        yield info


def _tick_cursor(changes: ChangeCursor, digests: dict[str, str]) -> str:
    # One JSON object: the change cursor's own fields, which ``ChangeCursor.from_json`` reads (ignoring the
    # rest), beside the digests of the sources' listings.
    fields = {**json.loads(changes.to_json()), "listed": digests}
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def _listed_digests(cursor: str | None) -> dict[str, str]:
    return dict(json.loads(cursor).get("listed", {})) if cursor else {}


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
    if claim.hwm is None:
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


# Ticks reuse stores (and their boto3 client): building a client costs more CPU than an idle tick.
_STORES_CACHE_SIZE = 8
_stores_lock = threading.Lock()
_stores_cache: dict[str, Stores] = {}


def _stores_for(settings: Settings) -> Stores:
    key = settings.model_dump_json()
    with _stores_lock:
        stores = _stores_cache.get(key)
        if stores is None:
            if len(_stores_cache) >= _STORES_CACHE_SIZE:
                _close(_stores_cache.pop(next(iter(_stores_cache))))
            stores = _stores_cache[key] = build_stores(settings)
        return stores


def _close(stores: Stores) -> None:
    for store in {id(s): s for s in (stores.pipelines, stores.lake, stores.warehouse)}.values():
        if isinstance(store, S3Store):
            store.close()
