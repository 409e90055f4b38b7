"""The whole instance in one archive (karma.run's admin export, import and reset).

The archive is a ZIP: ``karet-instance.json`` (``format_version``, instance name, time), every object of
the distinct buckets as ``objects/<bucket>/<key>`` (pipelines, raw files, Delta tables with every version,
dashboards, saved queries, and the auth area with users' hashes), and each Dagster run with its event log as
``runs/<creation index>-<run id>.jsonl`` (the run, its job and plan snapshots, then one event per line,
in Dagster's own serialisation). Both ways are streamed through temporary files: an object or a run is
never held whole in memory, and neither is the archive. Import restores into an instance with no pipelines
and no runs, replaying each run's events through Dagster so its run record (status, start and end) is
rebuilt as it was; reset deletes every object and run, and forgets a generated session secret, so the
instance is back at needs-setup and no old session survives.
"""

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import dagster as dg
from dagster import deserialize_value, serialize_value
from dagster._core.snap import ExecutionPlanSnapshot, JobSnap

from karet_api.services.auth.secret import SECRET_DIR_NAME, SECRET_FILE_NAME
from karet_api.services.transfer import ExportEntry, iter_zip
from karet_defs.errors import (
    InstanceNotEmpty,
    InvalidArchive,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedFormatVersion,
)
from karet_defs.scratch import scratch_dir
from karet_defs.settings import Settings
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, ObjectStore, Stores
from karet_defs.store.local import LocalStore

FORMAT_VERSION = 1
MANIFEST = "karet-instance.json"
OBJECTS = "objects/"
RUNS = "runs/"
BUCKETS = ("pipelines", "lake", "warehouse")
MAX_ARCHIVE_BYTES = 64 * 1024**3
_EVENT_PAGE = 1000
_CHUNK = 1024 * 1024
_DELETE_BATCH = 1000


@dataclass(frozen=True)
class Restored:
    objects: int
    runs: int


def buckets(stores: Stores) -> dict[str, ObjectStore]:
    """The distinct buckets by name: one entry (``pipelines``) when all three are the same store."""
    chosen: dict[str, ObjectStore] = {}
    for name in BUCKETS:
        store = getattr(stores, name)
        if all(store is not other for other in chosen.values()):
            chosen[name] = store
    return chosen


def iter_export(stores: Stores, instance: dg.DagsterInstance, settings: Settings) -> Iterator[bytes]:
    """The archive of the whole instance, in chunks, built while it is read."""
    with scratch_dir("instance-export") as tmp:
        archive_root = LocalStore(Path(tmp) / "archive-root")
        manifest = {
            "format_version": FORMAT_VERSION,
            "instance": settings.instance_name,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "buckets": list(buckets(stores)),
        }
        archive_root.put(MANIFEST, json.dumps(manifest).encode(), content_type="application/json")
        # Oldest first, numbered: an import replays them in archive order, so every job list keeps its order.
        for index, record in enumerate(instance.get_run_records(ascending=True)):
            _stage_run(archive_root, instance, record.dagster_run, Path(tmp) / "run.jsonl", index)
        entries = [ExportEntry(archive_root, info, info.key) for info in archive_root.list("")]
        for name, store in buckets(stores).items():
            entries += [
                ExportEntry(store, info, f"{OBJECTS}{name}/{info.key}")
                for info in _objects(store)
                if not info.key.endswith("/")
            ]
        yield from iter_zip(entries)


def _stage_run(
    archive_root: LocalStore, instance: dg.DagsterInstance, run: dg.DagsterRun, path: Path, index: int
) -> None:
    with open(path, "w") as out:
        out.write(serialize_value(run) + "\n")
        # A run record names its job and plan snapshots: without them Dagster refuses to add it back.
        job = instance.get_job_snapshot(run.job_snapshot_id) if run.job_snapshot_id else None
        plan_id = run.execution_plan_snapshot_id
        plan = instance.get_execution_plan_snapshot(plan_id) if plan_id else None
        out.write(serialize_value(job) + "\n")
        out.write(serialize_value(plan) + "\n")
        cursor = None
        while True:
            page = instance.get_records_for_run(run.run_id, cursor=cursor, limit=_EVENT_PAGE)
            for event in page.records:
                out.write(serialize_value(event.event_log_entry) + "\n")
            if not page.has_more:
                break
            cursor = page.cursor
    archive_root.put_file(f"{RUNS}{index:08d}-{run.run_id}.jsonl", path, content_type="application/x-ndjson")


def restore(stores: Stores, instance: dg.DagsterInstance, archive_file: IO[bytes]) -> Restored:
    """Restore an archive into an instance without pipelines or runs (its auth area is replaced)."""
    if any(True for _ in stores.pipelines.list(keys.PIPELINES_PREFIX)) or instance.get_runs_count() > 0:
        raise InstanceNotEmpty("import needs an instance without pipelines or runs: reset it first")
    try:
        archive = zipfile.ZipFile(archive_file)
    except (zipfile.BadZipFile, ValueError) as exc:
        raise Unprocessable("the body is not a ZIP archive", code="invalid_zip") from exc
    with archive, scratch_dir("instance-import") as tmp:
        _check_manifest(archive)
        # By role, not by store: an archive of three buckets restores into one, and the reverse.
        targets = {name: getattr(stores, name) for name in BUCKETS}
        members = [m for m in archive.infolist() if not m.is_dir() and m.filename != MANIFEST]
        for member in members:
            _check_member(member.filename, targets)
        restored_objects = restored_runs = 0
        for member in members:
            local = Path(tmp) / "member"
            _extract(archive, member, local)
            if member.filename.startswith(OBJECTS):
                name, _, key = member.filename[len(OBJECTS) :].partition("/")
                targets[name].put_file(key, local)
                restored_objects += 1
            else:
                _replay_run(instance, local)
                restored_runs += 1
            local.unlink()
    return Restored(restored_objects, restored_runs)


def _check_manifest(archive: zipfile.ZipFile) -> None:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (KeyError, ValueError) as exc:
        raise InvalidArchive(f"the archive has no readable {MANIFEST}") from exc
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int):
        raise InvalidArchive(f"{MANIFEST} has no format_version")
    if version > FORMAT_VERSION:
        raise UnsupportedFormatVersion(
            f"the archive's format_version {version} is newer than this release's ({FORMAT_VERSION})"
        )


def _check_member(name: str, targets: dict[str, ObjectStore]) -> None:
    parts = name.split("/")
    safe = (
        len(name) <= 1024
        and "\\" not in name
        and not name.startswith("/")
        and all(part and part not in (".", "..") for part in parts)
    )
    if name.startswith(OBJECTS):
        safe = safe and len(parts) >= 3 and parts[1] in targets
    elif name.startswith(RUNS):
        safe = safe and len(parts) == 2 and name.endswith(".jsonl")
    else:
        safe = False
    if not safe:
        raise Unprocessable(f"unexpected archive entry {name[:200]!r}", code="invalid_entry_path")


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, dest: Path) -> None:
    written = 0
    with archive.open(member) as source, open(dest, "wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > member.file_size:  # a size the header lies about: a bomb in disguise
                raise PayloadTooLarge(
                    f"{member.filename} expands beyond its declared size", code="zip_too_large"
                )
            out.write(chunk)


def _replay_run(instance: dg.DagsterInstance, path: Path) -> None:
    with open(path) as lines:
        run = deserialize_value(next(lines), dg.DagsterRun)
        job, plan = deserialize_value(next(lines)), deserialize_value(next(lines))
        if isinstance(job, JobSnap):  # an exported run may have no snapshots (None)
            instance.run_storage.add_job_snapshot(job)
        if isinstance(plan, ExecutionPlanSnapshot):
            instance.run_storage.add_execution_plan_snapshot(plan)
        instance.add_run(run)
        for line in lines:
            # handle_new_event, not store_event: it also moves the run record through its statuses and times.
            instance.handle_new_event(deserialize_value(line, dg.EventLogEntry))


def _objects(store: ObjectStore) -> Iterator[ObjectInfo]:
    # Dot folders at the root are the local store's machinery (run locks), never the instance's data.
    return (info for info in store.list("") if not info.key.startswith("."))


def reset(stores: Stores, instance: dg.DagsterInstance, settings: Settings) -> int:
    """Delete every object and every run; return how many objects went."""
    deleted = 0
    for store in buckets(stores).values():
        batch: list[str] = []
        for info in _objects(store):
            batch.append(info.key)
            if len(batch) >= _DELETE_BATCH:
                deleted += store.delete_many(batch)
                batch = []
        if batch:
            deleted += store.delete_many(batch)
    # Runs and the whole event log, asset and check records included: an import replays them afresh.
    instance.wipe()
    if not settings.session_secret and not settings.uses_s3:
        # A generated secret goes too: sessions signed before the reset must not open the new instance.
        secret = settings.data_dir / SECRET_DIR_NAME / SECRET_FILE_NAME
        if secret.exists():
            os.unlink(secret)
    return deleted
