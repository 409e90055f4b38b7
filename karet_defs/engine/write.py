"""Turning one mapping's output into published Parquet objects (REFERENCE §3.4, SPEC §2.3 and §4).

Each partition file is written to a local temporary file and uploaded with one atomic put, so readers see
the previous object or the new one, never a part. After a mapping's files are all in place, its files that
this run did not write (partitions whose rows vanished, older layouts) are reaped.
"""

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from karet_defs.config.models import AnalyticTable
from karet_defs.errors import KaretError
from karet_defs.store.base import ObjectStore

_SEGMENT_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class PartitionError(Exception):
    """The frame cannot be split into Hive partitions; the message is user-facing."""


class PublishError(Exception):
    """An upload failed; the files uploaded before it stay, the message names the key."""


@dataclass(frozen=True)
class PartitionFile:
    relative_key: str  # under the table prefix, e.g. ``year=2026/month=4/m.parquet``
    frame: pl.DataFrame


def dedup(frame: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, int]:
    """Keep the first row per key tuple in ingest order; return the frame and how many rows were dropped."""
    if not keys:
        return frame, 0
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise PartitionError(f"dedup key `{missing[0]}` is not produced by the mapping")
    kept = frame.unique(subset=keys, keep="first", maintain_order=True)
    return kept, frame.height - kept.height


def render_segment(value: object) -> str:
    """A Hive path segment value: plain integers, true/false, ISO dates, percent-encoded strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return "".join(chr(b) if b in _SEGMENT_SAFE else f"%{b:02X}" for b in value.encode("utf-8"))
    raise PartitionError(f"unsupported partition key value: {value!r}")


def split_partitions(frame: pl.DataFrame, table: AnalyticTable, mapping_id: str) -> list[PartitionFile]:
    """One file per key tuple (first-appearance order), key columns moved from the payload into the path."""
    file_name = f"{mapping_id}.parquet"
    keys = table.partition_keys
    if not keys:
        return [PartitionFile(file_name, frame)]
    for key in keys:
        if key not in frame.columns:
            raise PartitionError(f"partition key `{key}` is not produced by the mapping")
        nulls = frame.get_column(key).null_count()
        if nulls:
            raise PartitionError(
                f"partition key `{key}` has {nulls} null value(s); rows cannot be assigned to a partition "
                "(coalesce in the expression to supply a default)"
            )
    groups = frame.partition_by(keys, maintain_order=True, include_key=False, as_dict=True)
    files = []
    for values, part in groups.items():
        segments = "/".join(f"{k}={render_segment(v)}" for k, v in zip(keys, values, strict=True))
        files.append(PartitionFile(f"{segments}/{file_name}", part))
    return files


def publish(store: ObjectStore, table_prefix: str, files: list[PartitionFile]) -> list[str]:
    """Upload every partition file (atomic per object); return the keys written; stop at the first failure."""
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="karet-write-") as tmp:
        for index, part in enumerate(files):
            local = Path(tmp) / f"{index}.parquet"
            part.frame.write_parquet(local, compression="zstd", statistics=True)
            key = table_prefix + part.relative_key
            try:
                store.put_file(key, local, content_type="application/octet-stream")
            except KaretError as exc:
                raise PublishError(f"S3 PutObject failed for {key}: {exc.message}") from exc
            local.unlink()
            written.append(key)
    return written


def reap_stale(store: ObjectStore, table_prefix: str, mapping_id: str, keep: set[str]) -> list[str]:
    """Delete this mapping's files under the table that were not just written; return the deleted keys."""
    file_name = f"{mapping_id}.parquet"
    stale = [
        info.key
        for info in store.list(table_prefix)
        if info.key.rsplit("/", 1)[-1] == file_name and info.key not in keep
    ]
    if stale:
        store.delete_many(stale)
    return stale
