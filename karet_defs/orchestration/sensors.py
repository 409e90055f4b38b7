"""The raw-files sensor of a pipeline.

A tick lists the pipeline's source prefixes (baked in when the code location loads: no per-tick GET of
``pipeline.json``), compares them with its ``ChangeCursor`` (``karet_defs.store.changes``) and asks for at
most one run for the whole batch, ``run_key`` = digest of the batch's (key, ETag, stamp) versions. With no
cursor (a new pipeline) every existing file is new: they run once, on the first tick (pitfall 7); the
cursor lives in Dagster's instance, so a restart of the daemon re-runs nothing.

A tick drops versions the webhook covered (the coverage records of ``karet_defs.orchestration.run_coverage``).
It ignores its *own* record on purpose: if the daemon dies between a tick and the launch, the unchanged cursor
makes the next tick ask again. A tick also waits (keeping its cursor) while a run of the pipeline is queued or
running, or ended less than ``RUN_END_GRACE_SECONDS`` ago: the webhook's follow-up run is created the moment
the current one ends, and its claims land just after.

A tick also observes each source's raw-files asset (file count, bytes, newest file) when what it listed
under that source differs from the last tick, so lineage shows when raw files last changed. The summaries'
digests ride in the tick's cursor beside the change cursor; an unchanged listing reports nothing.
"""

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dagster as dg

from karet_defs.config.models import FileRows, Pipeline
from karet_defs.engine.dimensions import DIMENSION_EXTENSIONS
from karet_defs.engine.read import SOURCE_EXTENSIONS
from karet_defs.orchestration.assets import source_key
from karet_defs.orchestration.jobs import dagster_name, run_tags
from karet_defs.orchestration.resources import StoreResource
from karet_defs.orchestration.run_coverage import (
    SENSOR,
    WEBHOOK,
    active_run,
    ended_within,
    read_coverage,
    write_coverage,
)
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


def sensor_name(slug: str) -> str:
    return f"{dagster_name(slug)}_raw_files"


def raw_files_watch(pipeline: Pipeline, slug: str) -> Watch:
    """The pipeline's source prefixes and the extensions its engine reads there, and the prefixes of its
    file-backed dimensions: a changed dimension CSV changes the rows of the tables using it."""
    sources = [(s.resolved_prefix(slug), SOURCE_EXTENSIONS[s.format]) for s in pipeline.source_containers]
    dimensions: list[tuple[str, tuple[str, ...]]] = [
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
