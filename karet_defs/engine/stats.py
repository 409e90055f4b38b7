"""Facts about one version of a table (files, bytes, rows, when it was written), from its Delta log.

Nothing is listed: the log's add actions name the files of the version with their sizes and row counts,
so the facts never mix in the files of a run still writing, nor those of expired versions.
"""

import datetime as dt
import io
import struct
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow.parquet as pq

from karet_defs.engine import delta
from karet_defs.store import keys
from karet_defs.store.base import ObjectStore

_FOOTER_TAIL = 8  # 4-byte little-endian footer length + b"PAR1"
COMMIT_FOLDER = "_delta_log/"


@dataclass(frozen=True)
class TableStats:
    file_count: int
    bytes: int
    row_count: int
    last_modified: dt.datetime | None  # when the version was committed
    version: int | None = None  # None: the table has never been written


def parquet_row_count(store: ObjectStore, key: str, size: int) -> int:
    """Rows of one Parquet object, reading only its footer."""
    local = store.local_path(key)
    if local is not None:
        rows: int = pq.read_metadata(local).num_rows
        return rows
    tail = store.get_range(key, size - _FOOTER_TAIL, size - 1)
    (footer_len,) = struct.unpack("<I", tail[:4])
    footer = store.get_range(key, size - _FOOTER_TAIL - footer_len, size - _FOOTER_TAIL - 1)
    # pyarrow reads metadata from the end of a buffer: a magic head plus the real footer is a valid file.
    rows = pq.read_metadata(io.BytesIO(b"PAR1" + footer + tail)).num_rows
    return rows


def table_stats(store: ObjectStore, slug: str, table_id: str, *, version: int | None = None) -> TableStats:
    """Files, bytes and rows of one version of a table (default the latest), read from its Delta log."""
    loaded = delta.open_table(delta.location(store, slug, table_id), version)
    if loaded is None:
        return TableStats(file_count=0, bytes=0, row_count=0, last_modified=None)
    files = delta.active_files(loaded).to_dicts()
    prefix = keys.table_prefix(slug, table_id)
    rows = 0
    for file in files:
        recorded = file.get("num_records")
        # Writers other than ours may leave the statistics out; the footer still knows.
        rows += (
            int(recorded)
            if recorded is not None
            else parquet_row_count(store, prefix + unquote(str(file["path"])), int(file["size_bytes"]))
        )
    return TableStats(
        file_count=len(files),
        bytes=sum(delta.row_int(f, "size_bytes") for f in files),
        row_count=rows,
        last_modified=_committed_at(store, prefix, loaded.version(), files),
        version=loaded.version(),
    )


def _committed_at(
    store: ObjectStore, prefix: str, version: int, files: list[dict[str, object]]
) -> dt.datetime | None:
    """When ``version`` was committed: the time its commit file was written. Once log cleanup has removed
    that file, the newest of its data files' modification times (set when they were committed)."""
    info = store.head(f"{prefix}{COMMIT_FOLDER}{version:020d}.json")
    if info is not None:
        return info.last_modified
    stamps = [delta.row_int(f, "modification_time") for f in files if f.get("modification_time") is not None]
    return dt.datetime.fromtimestamp(max(stamps) / 1000, tz=dt.UTC) if stamps else None
