"""Hive partition rules of a mapping's output (REFERENCE §3.4, SPEC §2.3): path segments and key checks."""

import datetime as dt
from collections.abc import Mapping

import polars as pl

from karet_defs.config.models import AnalyticTable

_SEGMENT_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class PartitionError(Exception):
    """The frame cannot be split into Hive partitions; the message is user-facing."""


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


def check_partition_keys(schema: pl.Schema, counts: Mapping[str, int | None], table: AnalyticTable) -> None:
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
