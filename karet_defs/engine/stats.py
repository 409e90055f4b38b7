"""Facts about a published table read from the warehouse: files, bytes, rows (from Parquet footers)."""

import io
import struct
from dataclasses import dataclass
from datetime import datetime

import pyarrow.parquet as pq

from karet_defs.store import keys
from karet_defs.store.base import ObjectStore

_FOOTER_TAIL = 8  # 4-byte little-endian footer length + b"PAR1"


@dataclass(frozen=True)
class TableStats:
    file_count: int
    bytes: int
    row_count: int
    last_modified: datetime | None


def parquet_row_count(store: ObjectStore, key: str, size: int) -> int:
    """Rows of one Parquet object, reading only its footer."""
    local = store.local_path(key)
    if local is not None:
        return pq.read_metadata(local).num_rows
    tail = store.get_range(key, size - _FOOTER_TAIL, size - 1)
    (footer_len,) = struct.unpack("<I", tail[:4])
    footer = store.get_range(key, size - _FOOTER_TAIL - footer_len, size - _FOOTER_TAIL - 1)
    # pyarrow reads metadata from the end of a buffer: a magic head plus the real footer is a valid file.
    return pq.read_metadata(io.BytesIO(b"PAR1" + footer + tail)).num_rows


def table_stats(store: ObjectStore, slug: str, table_id: str) -> TableStats:
    """Count the Parquet files, bytes and rows under a table's clean prefix."""
    files = [i for i in store.list(keys.table_prefix(slug, table_id)) if i.key.endswith(".parquet")]
    return TableStats(
        file_count=len(files),
        bytes=sum(i.size for i in files),
        row_count=sum(parquet_row_count(store, i.key, i.size) for i in files),
        last_modified=max((i.last_modified for i in files), default=None),
    )
