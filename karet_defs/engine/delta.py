"""Analytic tables as Delta Lake tables (SPEC §8): where they live, what the last commit says, commits.

A table is rooted at ``pipelines/<slug>/clean/<table_id>/`` and partitioned by its ``partition_keys`` (Hive
folders). Every row carries two hidden columns, the raw file it came from and the mapping that produced it,
and every data file holds the rows of exactly one (mapping, raw file) pair when it is written, so replacing
or removing the rows of a raw file is a metadata operation: remove its data files, add the new ones, in the
same commit. Each commit made here records, in its commit metadata, the state the next run starts from
(per mapping: a signature of its definition and the ETag of every raw file it holds), the Dagster run, the
trigger and the config ETag; any host can therefore run the next incremental run, without a cache.

Data is read by Polars or pyarrow from the files of one version, never through delta-rs' own readers:
``DeltaTable.to_pyarrow_*`` leaves a native thread behind that aborts the interpreter at exit (delta-rs
#2184), measured here in 5 of 12 processes.
"""

import datetime as dt
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsInt, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from karet_defs.errors import NotFound, ObjectNotFound, StoreError
from karet_defs.store import keys
from karet_defs.store.base import ObjectStore, TableLocation

SOURCE_COLUMN = "_karet_source"
MAPPING_COLUMN = "_karet_mapping"
HIDDEN_COLUMNS = (SOURCE_COLUMN, MAPPING_COLUMN)

META_STATE = "karet.state"
META_JOB_ID = "karet.job_id"
META_TRIGGER = "karet.trigger"
META_CONFIG_ETAG = "karet.config_etag"
META_OPERATION = "karet.operation"
META_ROWS_ADDED = "karet.rows_added"
META_ROWS_REMOVED = "karet.rows_removed"
META_SCHEMA_CHANGED = "karet.schema_changed"

# Commits after which the table still holds exactly the rows of the last recorded state.
ROW_NEUTRAL_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES"})
STATE_LOOKBACK = 50
LOG_DIR = "_delta_log"
# Longer string statistics are left out: a truncated maximum would not be an upper bound.
_MAX_STAT_CHARS = 64


class TableVersionNotFound(NotFound):
    code = "version_not_found"


@dataclass(frozen=True)
class MappingState:
    """What a table holds of one mapping: the definition it was evaluated with and each raw file's ETag."""

    signature: str
    files: dict[str, str]

    def to_json(self) -> dict[str, object]:
        return {"signature": self.signature, "files": self.files}


TableState = dict[str, MappingState]


def location(warehouse: ObjectStore, slug: str, table_id: str) -> TableLocation:
    return warehouse.table_location(keys.table_prefix(slug, table_id))


def open_table(where: TableLocation, version: int | None = None) -> DeltaTable | None:
    """The table (at ``version``, default the latest), or None when no Delta table exists there yet."""
    try:
        table = DeltaTable(where.uri, storage_options=where.storage_options or None)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:
        raise StoreError(f"cannot read the Delta table at {where.uri}: {exc}") from exc
    if version is None:
        return table
    # delta-rs 1.6.6 spins for minutes on a version far beyond the newest one: refuse it before asking.
    if version > table.version():
        raise TableVersionNotFound(f"version {version} of the table does not exist or has expired")
    try:
        table.load_as_version(version)
        return table
    except (DeltaError, OSError) as exc:
        if isinstance(exc, TableNotFoundError) or "version" in str(exc).lower():
            raise TableVersionNotFound(
                f"version {version} of the table does not exist or has expired"
            ) from exc
        raise StoreError(f"cannot read the Delta table at {where.uri}: {exc}") from exc


def commit_info(
    where: TableLocation, version: int, store: ObjectStore | None = None, prefix: str = ""
) -> dict[str, object] | None:
    """The ``commitInfo`` of one version, read from its log entry; None when the entry is gone (expired or
    covered by a checkpoint). Read directly, not through ``history()``, which lists the whole log and, in
    delta-rs 1.6.6, answers for the newest versions even on a table loaded at an older one."""
    entry = f"{LOG_DIR}/{version:020d}.json"
    try:
        if store is not None:
            # The store's own client: its timeouts and retries are the ones every other read uses.
            body = store.get(prefix + entry)
        else:
            with DeltaStorageHandler(where.uri, where.storage_options or None).open_input_file(
                entry
            ) as handle:
                body = handle.read()
    except (FileNotFoundError, ObjectNotFound):
        return None
    except OSError as exc:
        raise StoreError(f"cannot read the Delta log at {where.uri}: {exc}") from exc
    for line in body.decode().splitlines():
        if line.strip() and "commitInfo" in (action := json.loads(line)):
            return dict(action["commitInfo"])
    return {}


def recorded_state(
    where: TableLocation, version: int, store: ObjectStore | None = None, prefix: str = ""
) -> TableState | None:
    """The state recorded as of ``version``, or None when a commit since the last recorded one changed rows
    without one (another writer, a manual restore): then the content is unknown and must be rebuilt."""
    for candidate in range(version, max(-1, version - STATE_LOOKBACK), -1):
        info = commit_info(where, candidate, store, prefix)
        if info is None:
            return None
        raw = info.get(META_STATE)
        if raw is not None:
            decoded = cast(
                "Mapping[str, Mapping[str, Any]]", json.loads(raw) if isinstance(raw, str) else raw
            )
            return {
                mapping_id: MappingState(str(entry["signature"]), dict(entry["files"]))
                for mapping_id, entry in decoded.items()
            }
        if info.get("operation") not in ROW_NEUTRAL_OPERATIONS:
            return None
    return None


def encode_state(state: Mapping[str, MappingState]) -> str:
    return json.dumps({k: v.to_json() for k, v in sorted(state.items())}, separators=(",", ":"))


def active_files(table: DeltaTable) -> pl.DataFrame:
    """One row per data file of the loaded version: ``path`` (as the log records it: percent-encoded, so
    ``urllib.parse.unquote`` gives the file's path under the table root), ``size_bytes``, ``num_records``,
    ``modification_time``, ``partition.<key>`` and, where recorded, min/max of the hidden columns."""
    frame = pl.DataFrame(pa.table(table.get_add_actions(flatten=True)))
    return frame.sort("path") if frame.height else frame


def same_schema(current: DeltaTable, expected: pa.Schema) -> bool:
    """Whether the table's columns have the names and Delta types of ``expected``, in order."""
    have = json.loads(current.schema().to_json())["fields"]
    want = json.loads(Schema.from_arrow(expected).to_json())["fields"]
    return [(f["name"], f["type"]) for f in have] == [(f["name"], f["type"]) for f in want]


def visible_schema(table: DeltaTable) -> pa.Schema:
    """The table's columns as readers see them, hidden columns left out."""
    schema = pa.schema(table.schema().to_arrow())
    return pa.schema([f for f in schema if f.name not in HIDDEN_COLUMNS])


@dataclass
class DataFile:
    """A Parquet file written under the table root, not yet committed."""

    relative: str  # the literal path under the table root, Hive segments included
    partition_values: dict[str, str | None]
    size: int
    rows: int
    stats: str
    mapping_id: str
    source: str


def data_file_name(mapping_id: str, source: str) -> str:
    """A file name unique to this write, naming the mapping and (by hash) the raw file, for people."""
    digest = uuid.uuid5(uuid.NAMESPACE_URL, source).hex[:12]
    return f"{mapping_id}.{digest}.{uuid.uuid4().hex[:12]}.parquet"


def describe_file(
    path: Path, relative: str, partition_values: dict[str, str | None], mapping_id: str, source: str
) -> DataFile:
    """Row count and Delta statistics of a written file, from its Parquet footer."""
    metadata = pq.read_metadata(path)
    return DataFile(
        relative=relative,
        partition_values=partition_values,
        size=path.stat().st_size,
        rows=metadata.num_rows,
        stats=_stats_json(metadata),
        mapping_id=mapping_id,
        source=source,
    )


def _stats_json(metadata: pq.FileMetaData) -> str:
    mins: dict[str, object] = {}
    maxs: dict[str, object] = {}
    nulls: dict[str, int] = {}
    for column in range(metadata.num_columns):
        name = metadata.schema.column(column).name
        low: object = None
        high: object = None
        null_count = 0
        complete = True
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            if stats is None or not stats.has_null_count:
                complete = False
                break
            null_count += stats.null_count
            if stats.has_min_max:
                low = stats.min if low is None else min(low, stats.min)
                high = stats.max if high is None else max(high, stats.max)
        if not complete:
            continue
        nulls[name] = null_count
        if low is not None and _fits(low) and _fits(high):
            mins[name], maxs[name] = _stat_value(low), _stat_value(high)
    return json.dumps(
        {"numRecords": metadata.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
    )


def _fits(value: object) -> bool:
    return not isinstance(value, str | bytes) or len(value) <= _MAX_STAT_CHARS


def _stat_value(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


@dataclass
class Commit:
    """What one run changes in one table, committed at once."""

    added: list[DataFile] = field(default_factory=list)
    removed: list[dict[str, object]] = field(default_factory=list)  # rows of ``active_files``
    replace_all: bool = False
    schema_changed: bool = False

    @property
    def rows_added(self) -> int:
        return sum(f.rows for f in self.added)

    @property
    def rows_removed(self) -> int:
        return sum(row_int(f, "num_records") for f in self.removed)

    def partitions_written(self, partition_keys: list[str]) -> list[str]:
        """The partition folders this commit writes into (``k1=v1/k2=v2``), sorted."""
        written = {
            "/".join(f.relative.split("/")[: len(partition_keys)]) for f in self.added if partition_keys
        }
        return sorted(written)

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed and not self.replace_all


def commit(
    where: TableLocation,
    table: DeltaTable | None,
    change: Commit,
    schema: pa.Schema,
    partition_by: list[str],
    metadata: Mapping[str, str],
) -> int:
    """Commit ``change`` as one new version of the table (created when missing); return that version.

    ``replace_all`` overwrites: every file of the current version is removed in the same commit. Commit
    conflicts with another writer are retried by delta-rs; a failure leaves the table at its old version.
    """
    now = int(time.time() * 1000)
    adds = [
        AddAction(
            path=f.relative,  # the literal path: delta-rs percent-encodes it in the log itself
            size=f.size,
            partition_values=f.partition_values,
            modification_time=now,
            data_change=True,
            stats=f.stats,
        )
        for f in change.added
    ]
    custom = {
        **metadata,
        META_ROWS_ADDED: str(change.rows_added),
        META_ROWS_REMOVED: str(change.rows_removed),
        META_SCHEMA_CHANGED: str(change.schema_changed).lower(),
    }
    properties = CommitProperties(custom_metadata=custom, max_commit_retries=20)
    delta_schema = Schema.from_arrow(schema)
    try:
        if table is None:
            create_table_with_add_actions(
                where.uri,
                delta_schema,
                adds,
                mode="error",
                partition_by=partition_by or None,
                storage_options=where.storage_options or None,
                commit_properties=properties,
            )
            return 0
        if change.replace_all:
            table.create_write_transaction(
                [*adds],
                mode="overwrite",
                schema=delta_schema,
                partition_by=partition_by or None,
                commit_properties=properties,
            )
        else:
            removes = [
                RemoveAction(
                    path=urllib.parse.unquote(str(f["path"])),  # the log's form, decoded once
                    data_change=True,
                    deletion_timestamp=now,
                    size=row_int(f, "size_bytes"),
                    partition_values=partition_values_of(f, partition_by),
                )
                for f in change.removed
            ]
            table.create_write_transaction(
                [*adds, *removes],
                mode="append",
                schema=delta_schema,
                partition_by=partition_by or None,
                commit_properties=properties,
            )
    except (CommitFailedError, DeltaError, OSError) as exc:
        raise StoreError(f"Delta commit to {where.uri} failed: {exc}") from exc
    table.update_incremental()
    return table.version()


def partition_values_of(row: Mapping[str, object], partition_by: Iterable[str]) -> dict[str, str | None]:
    """The partition values of a row of ``active_files``, as the Delta log records them."""
    values: dict[str, str | None] = {}
    for key in partition_by:
        value = row.get(f"partition.{key}")
        values[key] = None if value is None else partition_string(value)
    return values


def row_int(row: Mapping[str, object], column: str) -> int:
    """An integer column of a row of ``active_files`` (``size_bytes``, ``num_records``...), 0 when null."""
    value = row.get(column)
    return int(value) if isinstance(value, SupportsInt) else 0


def partition_string(value: object) -> str:
    """A partition value as the Delta log records it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
