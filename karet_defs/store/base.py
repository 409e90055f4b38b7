"""The ``ObjectStore`` interface every storage backend implements, and the three logical buckets.

Keys are ``/``-separated strings with no leading slash. ETags are normalised: no surrounding quotes and
no alphabetic ``-suffix`` (REFERENCE §4.4). Every method raises only ``KaretError`` subclasses:
``ObjectNotFound`` for a missing key, ``PreconditionFailed`` for a failed conditional put,
``BucketNotFound`` / ``StoreError`` for backend failures.
"""

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class TableLocation:
    """Where a Delta table lives, as Delta readers and writers (delta-rs, Polars, DuckDB) address it."""

    uri: str
    storage_options: dict[str, str]
    local_root: Path | None  # the table's folder when the store is local, else None

    def reader_options(self) -> dict[str, str] | None:
        """The endpoint and credentials alone, for other readers (Polars): the writer's commit and retry
        settings are delta-rs' own and some are refused elsewhere."""
        options = {k: v for k, v in self.storage_options.items() if k.startswith("AWS_")}
        return options or None


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime


class ObjectStore(Protocol):
    """A flat key/value object store with S3 semantics."""

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` in lexicographic key order, fetched page by page."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of one object, or None when it does not exist."""
        ...

    def get(self, key: str) -> bytes:
        """The whole object body."""
        ...

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` inclusive (HTTP Range semantics)."""
        ...

    def download(self, key: str, dest: Path) -> None:
        """Copy an object into a local file (streamed, never the whole body in memory)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path holding the object when the store is local, else None (callers download)."""
        ...

    def table_location(self, prefix: str) -> TableLocation:
        """The Delta table rooted at ``prefix`` (a folder key ending in ``/``)."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write an object atomically (readers see the old or the new body, never a part); return its ETag.

        ``if_match`` writes only if the current ETag equals it; ``if_none_match`` only if the key is absent;
        otherwise ``PreconditionFailed``.
        """
        ...

    def put_file(self, key: str, src: Path, *, content_type: str | None = None) -> str:
        """Upload a local file atomically; return its ETag."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object; a missing key is not an error."""
        ...

    # ``builtins.list``: inside this class body ``list`` names the method above.
    def delete_many(self, keys: builtins.list[str]) -> int:
        """Remove many objects (batched); return how many were asked for."""
        ...


@dataclass(frozen=True)
class Stores:
    """The three logical buckets of SPEC §1; with one bucket (or the local store) all three are the same."""

    pipelines: ObjectStore
    lake: ObjectStore
    warehouse: ObjectStore


def normalise_etag(raw: str | None) -> str:
    """Strip quotes and a trailing alphabetic ``-suffix`` (RustFS ``-zstd``); keep multipart ``-<digits>``."""
    if not raw:
        return ""
    etag = raw.strip().strip('"')
    head, sep, tail = etag.rpartition("-")
    if sep and tail.isalpha():
        return head
    return etag
