"""Keeping a Delta table healthy (issue 12, DRLS shapes): versions, health, compaction, expiry, restore.

Thresholds, chosen here and reported by ``table_health``:

- a data file is *small* under ``SMALL_FILE_BYTES`` (8 MiB); compaction is recommended when at least
  ``COMPACT_MIN_FILES`` (8) small files share a partition with another small file, since delta-rs'
  bin-packing (``optimize.compact``, target 100 MiB) only merges files of one partition and leaves a lone
  file alone;
- expiry is recommended when versions older than the retained ones exist: the last ``retain_last`` versions
  (``KARET_TABLE_VERSIONS``, default 10) are kept. The two commits delta-rs writes for each vacuum
  (``VACUUM START``/``VACUUM END``) are the expiry's own bookkeeping: they do not count towards the
  retention, so an expiry never pushes a run's version out.

Compaction, expiry and restore commit with Karet's commit metadata; compaction and expiry change no row and
copy the state the next incremental run starts from, a restore copies the state recorded at the restored
version. Expiry deletes only files that neither the current version nor a retained one needs
(``vacuum(keep_versions=...)``), then checkpoints the oldest retained version and deletes the log entries
before it, so an expired version can no longer be read (``TableVersionNotFound``). Data is never read here
through delta-rs' readers (see ``delta``); file facts come from the log.
"""

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import DeltaError
from deltalake.fs import DeltaStorageHandler

from karet_defs.engine.delta import (
    META_JOB_ID,
    META_OPERATION,
    META_ROWS_ADDED,
    META_ROWS_REMOVED,
    META_SCHEMA_CHANGED,
    META_STATE,
    META_TRIGGER,
    ROW_NEUTRAL_OPERATIONS,
    TableVersionNotFound,
    active_files,
    encode_state,
    open_table,
    recorded_state,
)
from karet_defs.errors import NotFound, StoreError, Unprocessable
from karet_defs.store.base import TableLocation

DEFAULT_RETAIN_LAST = 10
SMALL_FILE_BYTES = 8 * 1024 * 1024
COMPACT_MIN_FILES = 8
COMPACT_STRATEGIES = ("binpack",)

_LOG_DIR = "_delta_log"
_BOOKKEEPING = frozenset({"VACUUM START", "VACUUM END"})
# Operation names of commits another writer (or delta-rs itself) made without ``karet.operation``.
_DELTA_OPERATIONS = {
    "CREATE TABLE": "create",
    "WRITE": "write",
    "DELETE": "delete",
    "MERGE": "merge",
    "UPDATE": "update",
    "OPTIMIZE": "compact",
    "RESTORE": "restore",
    "VACUUM START": "expire",
    "VACUUM END": "expire",
}
# operationMetrics keys giving (files added, files removed), by delta-rs operation.
_FILE_METRICS = {
    "WRITE": ("num_added_files", "num_removed_files"),
    "OPTIMIZE": ("numFilesAdded", "numFilesRemoved"),
    "RESTORE": ("numRestoredFile", "numRemovedFile"),
}
_COMMIT_RETRIES = 20


def table_versions(loc: TableLocation) -> list[dict[str, Any]]:
    """Every readable version of the table, newest first; empty when the table has not been written yet.

    ``rows_removed`` (and other counts) are None where neither Karet's commit metadata nor the log says.
    """
    table = open_table(loc)
    if table is None:
        return []
    with _store_errors("listing the versions of", loc):
        log = _Log(loc)
        entries = [_version_entry(commit, log) for commit in table.history()]
    return sorted(entries, key=lambda e: e["version"], reverse=True)


def table_health(
    loc: TableLocation, table_id: str, *, retain_last: int = DEFAULT_RETAIN_LAST
) -> dict[str, Any]:
    """The DRLS health report of the current version, with its recommendation (thresholds above)."""
    table = existing_table(loc, table_id)
    with _store_errors("reading the health of", loc):
        history = table.history()
        files = active_files(table)
    sizes = [int(s) for s in files["size_bytes"]] if files.height else []
    small = [s < SMALL_FILE_BYTES for s in sizes]
    mergeable = _mergeable_small_files(files, small)
    oldest = oldest_retained(history, retain_last)
    expirable = sum(1 for h in history if _version(h) < oldest)
    reasons = []
    if mergeable >= COMPACT_MIN_FILES:
        reasons.append(
            f"consider compaction: {mergeable} files under {SMALL_FILE_BYTES // (1024 * 1024)} MiB "
            "share partitions with other small files"
        )
    if expirable:
        reasons.append(f"consider expiring versions: {expirable} older than the last {retain_last} kept")
    recommendation = "; ".join(reasons)
    total = sum(sizes)
    return {
        "success": True,
        "table": table_id,
        "snapshot_count": len(history),
        "data_file_count": len(sizes),
        "total_size_bytes": total,
        "avg_file_size_bytes": total // len(sizes) if sizes else 0,
        "small_file_count": sum(small),
        "recommendation": recommendation[:1].upper() + recommendation[1:] if reasons else "Healthy",
    }


def compact_table(
    loc: TableLocation,
    metadata: Mapping[str, str],
    *,
    strategy: str = "binpack",
    target_size: int | None = None,
) -> dict[str, Any]:
    """Bin-pack the small files of each partition into larger ones; the rows stay exactly the same."""
    if strategy not in COMPACT_STRATEGIES:
        raise Unprocessable(
            f"unknown compaction strategy {strategy!r}; known: {', '.join(COMPACT_STRATEGIES)}",
            code="invalid_strategy",
        )
    table = existing_table(loc, _table_name(loc))
    properties = _properties(metadata, "compact", _current_state(loc, table))
    with _store_errors("compacting", loc):
        metrics = table.optimize.compact(target_size=target_size, commit_properties=properties)
    details = {"rewritten_files": int(metrics["numFilesRemoved"]), "new_files": int(metrics["numFilesAdded"])}
    return _operation_result("compact", loc, details)


def expire_versions(
    loc: TableLocation,
    retain_last: int = DEFAULT_RETAIN_LAST,
    older_than: dt.datetime | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Remove the versions before the last ``retain_last`` (and, when given, before ``older_than``).

    Files that the current or a retained version needs are kept; the expired versions' own files are
    vacuumed, then their log entries deleted, so they can no longer be read. A crash between the two leaves
    expired versions listed whose files are gone; the next expiry completes the work.
    """
    if retain_last < 1:
        raise Unprocessable(
            "retain_last must be at least 1: the current version is always kept", code="invalid_retention"
        )
    table = existing_table(loc, _table_name(loc))
    with _store_errors("listing the versions of", loc):
        history = table.history()
    oldest = oldest_retained(history, retain_last, older_than)
    versions = sorted(_version(h) for h in history)
    expired = [v for v in versions if v < oldest]
    deleted: list[str] = []
    if expired:
        properties = _properties(metadata or {}, "expire", _current_state(loc, table))
        with _store_errors("expiring versions of", loc):
            deleted = table.vacuum(
                retention_hours=0,
                dry_run=False,
                enforce_retention_duration=False,
                keep_versions=[v for v in versions if v >= oldest],
                commit_properties=properties,
            )
            _trim_log(loc, oldest)
    details = {"expired_versions": len(expired), "oldest_version": oldest, "deleted_files": len(deleted)}
    return _operation_result("expire", loc, details)


def restore_version(loc: TableLocation, version: int, metadata: Mapping[str, str]) -> int:
    """Commit a new version holding version ``version``'s rows and return it (the current one if equal)."""
    table = open_table(loc)
    target = _readable(loc, table, version)
    assert table is not None  # ``_readable`` refuses a table never written
    if version == table.version():
        return version
    with _store_errors(f"restoring version {version} of", loc):
        now, then = _file_rows(table), _file_rows(target)
        custom = {
            **metadata,
            META_OPERATION: "restore",
            META_ROWS_ADDED: str(sum(rows for path, rows in then.items() if path not in now)),
            META_ROWS_REMOVED: str(sum(rows for path, rows in now.items() if path not in then)),
            META_SCHEMA_CHANGED: str(_arrow_schema(table) != _arrow_schema(target)).lower(),
        }
        state = _state_at(loc, version)
        if state is not None:
            custom[META_STATE] = state
        properties = CommitProperties(custom_metadata=custom, max_commit_retries=_COMMIT_RETRIES)
        table.restore(version, commit_properties=properties)
        table.update_incremental()
    return table.version()


def require_version(loc: TableLocation, version: int) -> None:
    """``TableVersionNotFound`` unless ``version`` of the table can be read (written, not expired)."""
    _readable(loc, open_table(loc), version)


def _readable(loc: TableLocation, table: DeltaTable | None, version: int) -> DeltaTable:
    # Bounds first: delta-rs takes a 64-bit version, and a version past the current one is no version.
    if table is None or version < 0 or version > table.version():
        raise TableVersionNotFound(f"version {version} of the table does not exist or has expired")
    target = open_table(loc, version)
    assert target is not None  # a table exists, so a missing version raised in ``open_table``
    return target


def oldest_retained(
    history: Sequence[Mapping[str, Any]], retain_last: int, older_than: dt.datetime | None = None
) -> int:
    """The oldest version an expiry keeps: the last ``retain_last`` versions (vacuum bookkeeping not
    counted) and, when ``older_than`` is given, every version committed at or after it."""
    versions = sorted(((_version(h), h) for h in history), key=lambda pair: pair[0], reverse=True)
    if not versions:
        return 0
    counted = [v for v, h in versions if h.get("operation") not in _BOOKKEEPING]
    oldest = counted[retain_last - 1] if len(counted) > retain_last else versions[-1][0]
    if older_than is not None:
        cutoff = _epoch_ms(older_than)
        recent = [v for v, h in versions if int(h.get("timestamp") or 0) >= cutoff]
        oldest = min(oldest, *recent) if recent else oldest
    return oldest


@contextmanager
def _store_errors(doing: str, loc: TableLocation) -> Iterator[None]:
    """delta-rs and object-store failures as the store's ``StoreError`` (503 ``s3_error``)."""
    try:
        yield
    except (DeltaError, OSError) as exc:
        raise StoreError(f"{doing} the Delta table at {loc.uri} failed: {exc}") from exc


def existing_table(loc: TableLocation, table_id: str) -> DeltaTable:
    """The current version of a written table; 404 ``table_not_found`` before its first commit."""
    table = open_table(loc)
    if table is None:
        raise NotFound(
            f"table `{table_id}` has not been written yet: run the pipeline first", code="table_not_found"
        )
    return table


def _table_name(loc: TableLocation) -> str:
    """The table id: the last segment of its root (``pipelines/<slug>/clean/<table_id>``)."""
    return loc.uri.rstrip("/").rsplit("/", 1)[-1]


def _operation_result(operation: str, loc: TableLocation, details: dict[str, int]) -> dict[str, Any]:
    return {
        "success": True,
        "operation": operation,
        "table": _table_name(loc),
        "details_json": json.dumps(details),
    }


def _properties(metadata: Mapping[str, str], operation: str, state: str | None) -> CommitProperties:
    """Commit metadata of a commit that changes no row: the caller's keys plus the unchanged state."""
    custom = {
        **metadata,
        META_OPERATION: operation,
        META_ROWS_ADDED: "0",
        META_ROWS_REMOVED: "0",
        META_SCHEMA_CHANGED: "false",
    }
    if state is not None:
        custom[META_STATE] = state
    return CommitProperties(custom_metadata=custom, max_commit_retries=_COMMIT_RETRIES)


def _current_state(loc: TableLocation, table: DeltaTable) -> str | None:
    return _state_at(loc, table.version())


def _state_at(loc: TableLocation, version: int) -> str | None:
    state = recorded_state(loc, version)
    return None if state is None else encode_state(state)


def _trim_log(loc: TableLocation, oldest: int) -> None:
    """Make every version before ``oldest`` unreadable: checkpoint ``oldest``, delete the log before it.

    The newest version is checkpointed before anything is deleted, so ``_last_checkpoint`` leads readers of
    the current version past the entries being deleted.
    """
    for version in (oldest, None):
        checkpointed = open_table(loc, version)
        assert checkpointed is not None
        checkpointed.create_checkpoint()
    log = _Log(loc)
    for path in log.entries():
        name = path.rsplit("/", 1)[-1]
        if name[:20].isdigit() and int(name[:20]) < oldest:
            log.handler.delete_file(path)


def _mergeable_small_files(files: Any, small: list[bool]) -> int:
    """Small files in partitions holding at least two small files: what bin-packing can merge."""
    partition_columns = [c for c in files.columns if c.startswith("partition.")]
    per_partition: dict[tuple[object, ...], int] = {}
    for index, row in enumerate(files.select(partition_columns).iter_rows() if files.height else []):
        if small[index]:
            per_partition[row] = per_partition.get(row, 0) + 1
    return sum(count for count in per_partition.values() if count > 1)


def _file_rows(table: DeltaTable) -> dict[str, int]:
    files = active_files(table)
    if not files.height:
        return {}
    return {str(p): int(n or 0) for p, n in zip(files["path"], files["num_records"], strict=True)}


def _arrow_schema(table: DeltaTable) -> pa.Schema:
    return pa.schema(table.schema().to_arrow())


def _version(commit: Mapping[str, Any]) -> int:
    return int(commit["version"])


def _epoch_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _iso(milliseconds: int) -> str:
    moment = dt.datetime.fromtimestamp(milliseconds / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Log:
    """The table's ``_delta_log`` folder, read and trimmed through delta-rs' own object store."""

    def __init__(self, loc: TableLocation) -> None:
        self.handler = DeltaStorageHandler(loc.uri, loc.storage_options or None)

    def actions(self, version: int) -> list[dict[str, Any]] | None:
        """The actions of one commit, or None when its log entry is gone (covered by a checkpoint)."""
        try:
            with self.handler.open_input_file(f"{_LOG_DIR}/{version:020d}.json") as handle:
                body = handle.read()
        except FileNotFoundError:
            return None
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]

    def commit_info(self, version: int) -> dict[str, Any] | None:
        actions = self.actions(version)
        if actions is None:
            return None
        return next((a["commitInfo"] for a in actions if "commitInfo" in a), {})

    def entries(self) -> list[str]:
        return [info.path for info in self.handler.get_file_info_selector(pafs.FileSelector(_LOG_DIR))]


def _version_entry(commit: Mapping[str, Any], log: _Log) -> dict[str, Any]:
    """One row of ``table_versions``: Karet's commit metadata first, then delta-rs' metrics, then the log."""
    version = _version(commit)
    operation = str(commit.get("operation", ""))
    metrics = commit.get("operationMetrics") or {}
    files = _files_from_metrics(operation, metrics)
    rows = _rows_from_metadata(commit)
    schema_changed = commit.get(META_SCHEMA_CHANGED)
    if files is None or rows is None or schema_changed is None:
        actions = log.actions(version)
        if actions is not None:
            adds = [a["add"] for a in actions if "add" in a]
            removes = [a["remove"] for a in actions if "remove" in a]
            files = files or (len(adds), len(removes))
            rows = rows or _rows_from_actions(adds, removes)
            if schema_changed is None:
                schema_changed = str(version > 0 and any("metaData" in a for a in actions)).lower()
    return {
        "version": version,
        "timestamp": _iso(int(commit.get("timestamp") or 0)),
        "operation": commit.get(META_OPERATION) or _DELTA_OPERATIONS.get(operation, operation.lower()),
        "job_id": commit.get(META_JOB_ID),
        "trigger": commit.get(META_TRIGGER),
        "rows_added": rows[0] if rows else None,
        "rows_removed": rows[1] if rows else None,
        "files_added": files[0] if files else None,
        "files_removed": files[1] if files else None,
        "schema_changed": None if schema_changed is None else str(schema_changed).lower() == "true",
    }


def _files_from_metrics(operation: str, metrics: Mapping[str, Any]) -> tuple[int, int] | None:
    if operation in _BOOKKEEPING:
        return (0, 0)
    keys = _FILE_METRICS.get(operation)
    if keys is None or keys[0] not in metrics:
        return None
    return (int(metrics[keys[0]]), int(metrics.get(keys[1]) or 0))


def _rows_from_metadata(commit: Mapping[str, Any]) -> tuple[int | None, int | None] | None:
    if META_ROWS_ADDED in commit and META_ROWS_REMOVED in commit:
        return (int(commit[META_ROWS_ADDED]), int(commit[META_ROWS_REMOVED]))
    if commit.get("operation") in ROW_NEUTRAL_OPERATIONS:
        return (0, 0)
    return None


def _rows_from_actions(
    adds: list[dict[str, Any]], removes: list[dict[str, Any]]
) -> tuple[int | None, int | None]:
    """Rows a foreign commit added (from the files' statistics) and removed (known only when none were)."""
    added: int | None = 0
    for add in adds:
        if not add.get("dataChange", True):
            continue
        stats = json.loads(add.get("stats") or "{}")
        if "numRecords" not in stats:
            added = None
            break
        added = (added or 0) + int(stats["numRecords"])
    removed = 0 if not any(r.get("dataChange", True) for r in removes) else None
    return (added, removed)
