"""Turning one mapping's staged output into published Parquet objects (REFERENCE §3.4, SPEC §2.3 and §4).

Partitions are written by one streaming sink into a local directory (key columns moved from the payload
into the path), then each file is uploaded with one atomic put, so readers see the previous object or the
new one, never a part. After a mapping's files are all in place, its files that this run did not write
(partitions whose rows vanished, older layouts) are reaped.
"""

import datetime as dt
from pathlib import Path

import polars as pl
from polars.io.partition import FileProviderArgs

from karet_defs.config.models import AnalyticTable
from karet_defs.errors import KaretError
from karet_defs.store.base import ObjectStore

_SEGMENT_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class PartitionError(Exception):
    """The frame cannot be split into Hive partitions; the message is user-facing."""


class PublishError(Exception):
    """An upload failed; the files uploaded before it stay, the message names the key."""


def dedup(frame: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Keep the first row per key tuple in ingest order."""
    if not keys:
        return frame
    produced = frame.collect_schema().names()
    missing = [k for k in keys if k not in produced]
    if missing:
        raise PartitionError(f"dedup key `{missing[0]}` is not produced by the mapping")
    return frame.unique(subset=keys, keep="first", maintain_order=True)


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


def partition_null_counts(schema: pl.Schema, table: AnalyticTable) -> list[pl.Expr]:
    """Aggregates counting the nulls of the partition keys in ``schema``, for ``check_partition_keys``."""
    keys = [key for key in table.partition_keys if key in schema]
    return [pl.col(key).null_count().alias(f"{key}\x00nulls") for key in keys]


def check_partition_keys(schema: pl.Schema, counts: dict[str, object], table: AnalyticTable) -> None:
    """Every key is produced, has a partitionable type and no nulls (``counts`` of ``partition_null_counts``);
    else the mapping fails."""
    keys = table.partition_keys
    for key in keys:
        if key not in schema:
            raise PartitionError(f"partition key `{key}` is not produced by the mapping")
        if schema[key].is_float() or schema[key].is_nested():
            raise PartitionError(f"unsupported partition key value: column `{key}` is {schema[key]}")
    for key in keys:
        if nulls := int(counts.get(f"{key}\x00nulls") or 0):
            raise PartitionError(
                f"partition key `{key}` has {nulls} null value(s); rows cannot be assigned to a "
                "partition (coalesce in the expression to supply a default)"
            )


def write_partitions(
    frame: pl.LazyFrame, table: AnalyticTable, mapping_id: str, out_dir: Path
) -> list[tuple[str, Path]]:
    """Write the frame as Hive partitions under ``out_dir``; return (relative key, local file) pairs."""
    output = PartitionedOutput(table, mapping_id, out_dir)
    output.sink(frame).collect(engine="streaming")
    return output.files()


class PartitionedOutput:
    """A mapping's partition files under a local directory, written by a lazy sink that may share its
    query with other sinks (``pl.collect_all``), so one pass over the input can feed several outputs."""

    def __init__(self, table: AnalyticTable, mapping_id: str, out_dir: Path) -> None:
        self.keys = table.partition_keys
        self.file_name = f"{mapping_id}.parquet"
        self.out_dir = out_dir
        self._written: list[str] = []

    def sink(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        if not self.keys:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._written = [self.file_name]
            return frame.sink_parquet(
                self.out_dir / self.file_name, compression="zstd", statistics=True, lazy=True
            )
        return frame.sink_parquet(
            pl.PartitionBy(
                self.out_dir,
                key=self.keys,
                include_key=False,
                file_path_provider=self._path_of,
                approximate_bytes_per_file=None,
            ),
            compression="zstd",
            statistics=True,
            mkdir=True,
            lazy=True,
        )

    def files(self) -> list[tuple[str, Path]]:
        return [(relative, self.out_dir / relative) for relative in self._written]

    def _path_of(self, args: FileProviderArgs) -> str:
        values = args.partition_keys.row(0)
        relative = "/".join(f"{k}={render_segment(v)}" for k, v in zip(self.keys, values, strict=True))
        self._written.append(f"{relative}/{self.file_name}")
        return self._written[-1]


def publish(store: ObjectStore, table_prefix: str, files: list[tuple[str, Path]]) -> dict[str, str]:
    """Upload every partition file (atomic per object); return key → ETag; stop at the first failure."""
    written: dict[str, str] = {}
    for relative, local in files:
        key = table_prefix + relative
        try:
            written[key] = store.put_file(key, local, content_type="application/octet-stream")
        except KaretError as exc:
            raise PublishError(f"S3 PutObject failed for {key}: {exc.message}") from exc
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
