"""A run's raw inputs: the files the mappings' sources list, each fetched at most once per run (local files
are read in place), and their grouping into batches of at most ``BATCH_FILES`` files / ``BATCH_BYTES`` (a
query's fixed cost dwarfs a small file; the bound keeps memory flat)."""

from pathlib import Path
from typing import NamedTuple

from karet_defs.config.models import Mapping, Pipeline
from karet_defs.engine.read import SOURCE_EXTENSIONS
from karet_defs.errors import KaretError
from karet_defs.store.base import ObjectInfo, ObjectStore

BATCH_FILES = 64
BATCH_BYTES = 64 * 2**20


def list_inputs(
    lake: ObjectStore, pipeline: Pipeline, slug: str, mappings: list[Mapping]
) -> list[ObjectInfo]:
    """Every raw file of the sources the mappings read, de-duplicated across sources, in listing order."""
    wanted = {m.source_container_id for m in mappings}
    seen: dict[str, ObjectInfo] = {}
    for source in pipeline.source_containers:
        if source.id not in wanted:
            continue
        extensions = SOURCE_EXTENSIONS[source.format]
        for info in lake.list(source.resolved_prefix(slug)):
            if info.key not in seen and info.key.lower().endswith(extensions):
                seen[info.key] = info
    return list(seen.values())


class RawInputs:
    """Raw files fetched on first need and at most once per run (local files are read in place)."""

    def __init__(self, lake: ObjectStore, folder: Path, infos: list[ObjectInfo]) -> None:
        self.lake = lake
        self.folder = folder
        self.infos = {info.key: info for info in infos}
        self.failed: dict[str, str] = {}
        self.parsed = 0
        self._paths: dict[str, Path] = {}

    def path(self, key: str) -> Path | None:
        """A local path of the file, or None when it cannot be fetched (recorded in ``failed``)."""
        if key in self._paths:
            return self._paths[key]
        if key in self.failed:
            return None
        path = self.lake.local_path(key)
        if path is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{len(self._paths)}{Path(key).suffix}"
            try:
                self.lake.download(key, path)
            except KaretError as exc:
                self.failed[key] = exc.message
                return None
        self._paths[key] = path
        return path


class FetchedFile(NamedTuple):
    """A raw file ready to be read: its listing, its local path and, for CSV, its header."""

    info: ObjectInfo
    path: Path
    header: tuple[str, ...] | None


def batches(files: list[FetchedFile]) -> list[list[FetchedFile]]:
    """``files`` in order, cut into batches within ``BATCH_FILES`` and ``BATCH_BYTES`` (a big file alone)."""
    grouped: list[list[FetchedFile]] = []
    size = 0
    for file in files:
        current = grouped[-1] if grouped else None
        fits = current is not None and len(current) < BATCH_FILES and size + file.info.size <= BATCH_BYTES
        if current is not None and fits:
            current.append(file)
            size += file.info.size
        else:
            grouped.append([file])
            size = file.info.size
    return grouped
