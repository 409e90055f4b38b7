"""Moving whole pipelines in and out as ZIP files.

Export streams the ZIP: objects are listed first (so a missing pipeline is still a clean 404), then each one
is compressed from a local file (the store's own, or a download) and the archive is handed out in chunks
as it grows, so neither the objects nor the archive sit in memory whole. Import is two-phase: every check
of REFERENCE §4.10 (size, entry count, safe paths, declared and actual expansion, zip-bomb ratios) runs
while the entries are extracted to a temporary folder, and only an archive that passed them all is written
to the store, ``pipeline.json`` last and only if the slug is still free. A refused import stores nothing.
"""

import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, BinaryIO

from karet_api.services.pipelines import already_exists, discard, distinct_stores
from karet_defs.errors import (
    ObjectNotFound,
    PayloadTooLarge,
    PipelineNotFound,
    PreconditionFailed,
    Unprocessable,
)
from karet_defs.history import versions
from karet_defs.scratch import scratch_dir
from karet_defs.slugs import pipeline_folders, relocate_path_prefixes
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, ObjectStore, Stores
from karet_defs.templates import store_for_path

MAX_ZIP_BYTES = 200 * 1024 * 1024
MAX_ENTRIES = 2000
MAX_EXPANDED_BYTES = 1024 * 1024 * 1024
MAX_ENTRY_PATH = 512
# DEFLATE tops out near 1032:1, on runs of one byte; real CSV, JSON and Parquet stay far below 100:1. Small
# entries are exempt: a few KiB of blanks compress that well without threatening anything.
MAX_COMPRESSION_RATIO = 200
RATIO_EXEMPT_BYTES = 1024 * 1024
SKIPPED_DIRS = ("jobs/",)  # Karet's job records: here jobs are Dagster runs, never imported objects

# REFERENCE §4.10's segment rule, plus percent escapes: partition folders of string values are written
# percent-encoded (``merchant=A%20B``), and an escape is a literal name in a key, never a separator.
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._= -]|%[0-9A-Fa-f]{2})*$")
# A Delta table's log folder, and the one name in it that the segment rule refuses (commits and checkpoints
# are digits). Anything else underscored there is a writer's scratch (an unfinished commit), in no version.
DELTA_LOG = "_delta_log"
_DELTA_LOG_NAMES = frozenset({"_last_checkpoint"})
_CHUNK = 1024 * 1024
_FLUSH_AT = 256 * 1024
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# What a damaged or unsupported archive raises while it is read (CRC mismatch, truncated stream, encrypted
# or unknown-method entries).
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


@dataclass(frozen=True)
class ExportEntry:
    store: ObjectStore
    info: ObjectInfo
    path: str  # relative to ``pipelines/<slug>/``, the entry name in the ZIP


def export_entries(stores: Stores, slug: str) -> list[ExportEntry]:
    """The objects of a pipeline, one per relative path, sorted; ``PipelineNotFound`` when there are none."""
    prefix = keys.pipeline_prefix(slug)
    chosen: dict[str, ExportEntry] = {}
    for store in distinct_stores(stores):
        for info in store.list(prefix):
            path = info.key[len(prefix) :]
            if not path or path.endswith("/"):
                continue  # folder markers
            if f"{DELTA_LOG}/" in path and not is_safe_entry_path(path):
                continue  # a Delta writer's scratch, in no version: an import would refuse it
            # One path in two buckets would collide in the ZIP: keep the copy an import would write back.
            if path in chosen and store_for_path(path, stores) is not store:
                continue
            chosen[path] = ExportEntry(store, info, path)
    if not chosen:
        raise PipelineNotFound(f"pipeline `{slug}` has no objects", extra={"pipeline": slug})
    return [chosen[path] for path in sorted(chosen)]


def iter_zip(entries: list[ExportEntry]) -> Iterator[bytes]:
    """The ZIP of ``entries`` (DEFLATE), in chunks, produced while it is read."""
    sink = _ChunkSink()
    with scratch_dir("export") as tmp:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for entry in entries:
                source = _open_object(entry.store, entry.info.key, Path(tmp) / "object")
                if source is None:
                    continue  # deleted since the listing: S3 would not return it either
                member = zipfile.ZipInfo(entry.path, date_time=_zip_time(entry.info.last_modified))
                member.compress_type = zipfile.ZIP_DEFLATED
                member.file_size = entry.info.size  # lets zipfile choose ZIP64 up front for big objects
                with source, archive.open(member, "w") as dest:
                    while chunk := source.read(_CHUNK):
                        dest.write(chunk)
                        yield from sink.drain(_FLUSH_AT)
        yield from sink.drain(0)


def _open_object(store: ObjectStore, key: str, scratch: Path) -> BinaryIO | None:
    try:
        path = store.local_path(key)
        if path is None:
            store.download(key, scratch)
            path = scratch
        return open(path, "rb")  # closed by the caller's ``with``
    except (ObjectNotFound, FileNotFoundError):
        return None


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    utc = moment.astimezone(UTC)
    stamp = (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
    return max(stamp, _ZIP_EPOCH)


class _ChunkSink:
    """A write-only, unseekable file for ``zipfile``: it keeps what was written until it is drained."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    # zipfile's types ask a writable file for ``close`` too, though it never closes a file it was given.
    def close(self) -> None:
        pass

    def drain(self, at_least: int) -> Iterator[bytes]:
        if self._size and self._size >= at_least:
            chunk = b"".join(self._parts)
            self._parts, self._size = [], 0
            yield chunk


def is_safe_entry_path(path: str) -> bool:
    """REFERENCE §4.10: 1–512 chars, no backslash, relative, segments ``[A-Za-z0-9][A-Za-z0-9._= -]*``
    (percent escapes allowed); and a Delta table's ``_delta_log/`` folder with its ``_last_checkpoint``."""
    if not 1 <= len(path) <= MAX_ENTRY_PATH or "\\" in path or path.startswith("/"):
        return False
    segments = path.split("/")
    for index, segment in enumerate(segments):
        in_log = index > 0 and segments[index - 1] == DELTA_LOG
        if not (
            _SAFE_SEGMENT.match(segment)
            or (segment == DELTA_LOG and index < len(segments) - 1)
            or (in_log and segment in _DELTA_LOG_NAMES)
        ):
            return False
    return True


@dataclass(frozen=True)
class _Extracted:
    path: str
    file: Path


def import_zip(stores: Stores, slug: str, archive_file: IO[bytes], *, author: str) -> None:
    """Check a pipeline ZIP completely, then store it as ``slug``; nothing is stored when a check fails.

    The config history comes along when the archive has one; the imported config is a new version unless
    it already is one of that history."""
    try:
        archive = zipfile.ZipFile(archive_file)
    except (*_ZIP_READ_ERRORS, OSError) as exc:
        raise Unprocessable(f"not a readable zip file: {exc}", code="invalid_zip") from exc
    with archive, scratch_dir("import") as tmp:
        members = _members_to_import(archive)
        extracted = _extract(archive, members, Path(tmp))
        config_file = next(e.file for e in extracted if e.path == keys.CONFIG_NAME)
        config = config_file.read_bytes()
        origin = _origin_slug(config, [e.path for e in extracted])
        if origin is not None:
            config = relocate_path_prefixes(config, origin, slug)
        _rehome_history(extracted, partial(relocate_path_prefixes, old=origin or slug, new=slug))
        _store(stores, slug, [e for e in extracted if e.path != keys.CONFIG_NAME], config)
    versions.record_live(stores, slug, author=author, note="imported from a ZIP archive", source="import")


def _rehome_history(extracted: list[_Extracted], relocate: Callable[[bytes], bytes]) -> None:
    files = {e.path: e.file for e in extracted if e.path.startswith(keys.VERSIONS_FOLDER)}
    if files:
        moved = versions.rehome_history({path: file.read_bytes() for path, file in files.items()}, relocate)
        for path, body in moved.items():
            files[path].write_bytes(body)


def _members_to_import(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = [m for m in archive.infolist() if not m.is_dir()]
    names = [m.filename for m in members]
    if keys.CONFIG_NAME not in names:
        raise Unprocessable("Zip must contain pipeline.json at the root", code="missing_pipeline_json")
    if len(members) > MAX_ENTRIES:
        raise Unprocessable(
            f"zip has {len(members)} entries, the limit is {MAX_ENTRIES}", code="too_many_entries"
        )
    for name in names:
        if not is_safe_entry_path(name):
            raise Unprocessable(f"Unsafe zip entry: {name}", code="invalid_entry_path")
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise Unprocessable(f"zip holds the entry {duplicate} twice", code="invalid_zip")
    declared = sum(m.file_size for m in members)
    if declared > MAX_EXPANDED_BYTES:
        raise _expands_too_large(f"zip expands to {declared} bytes")
    for member in members:
        if member.file_size > RATIO_EXEMPT_BYTES and member.file_size > MAX_COMPRESSION_RATIO * max(
            member.compress_size, 1
        ):
            raise _expands_too_large(
                f"zip entry {member.filename} expands {member.compress_size} bytes to {member.file_size}"
            )
    return [m for m in members if not m.filename.startswith(SKIPPED_DIRS)]


def _extract(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path) -> list[_Extracted]:
    # The declared sizes were checked; the bytes actually inflated are counted too, as a header may lie.
    total = 0
    extracted = []
    for number, member in enumerate(members):
        target = folder / f"{number:04d}"
        size = 0
        try:
            with archive.open(member) as source, open(target, "wb") as out:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if size > member.file_size or total > MAX_EXPANDED_BYTES:
                        raise _expands_too_large(f"zip entry {member.filename} inflates past its limits")
                    out.write(chunk)
        except _ZIP_READ_ERRORS as exc:
            raise Unprocessable(
                f"cannot read zip entry {member.filename}: {exc}", code="invalid_zip"
            ) from exc
        extracted.append(_Extracted(member.filename, target))
    return extracted


def _expands_too_large(message: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{message}; the limit is {MAX_EXPANDED_BYTES} bytes in all", code="zip_expands_too_large"
    )


def _origin_slug(config: bytes, paths: list[str]) -> str | None:
    """The slug the archive was exported from, as its config's absolute prefixes name it."""
    folders = pipeline_folders(config)
    if len(folders) <= 1:
        return next(iter(folders), None)
    # A config may also read other pipelines' folders; the exporter's own is the one whose files came along.
    for slug, rests in folders.items():
        if any(path.startswith(rest) for rest in rests for path in paths):
            return slug
    return None


def _content_type(path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    if path.endswith(".png"):
        return "image/png"
    return "application/octet-stream"


def _store(stores: Stores, slug: str, files: list[_Extracted], config: bytes) -> None:
    prefix = keys.pipeline_prefix(slug)
    written: list[tuple[ObjectStore, str]] = []
    try:
        for item in files:
            store = store_for_path(item.path, stores)
            store.put_file(prefix + item.path, item.file, content_type=_content_type(item.path))
            written.append((store, prefix + item.path))
        try:
            stores.pipelines.put(
                keys.config_key(slug), config, content_type="application/json", if_none_match=True
            )
        except PreconditionFailed as exc:
            raise already_exists(slug) from exc
    except BaseException:
        discard(written)
        raise
