"""Publishing one table's change, the same way for a mapping's table and a rollup's: the staged data files
are uploaded (unless the table is local, where they were written in place), then one Delta commit carries
them with the run's record (the state the next run starts from among it), and the run's report is told what
the commit holds. A failure before the commit leaves the table at its old version."""

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from karet_defs.config.models import AnalyticTable
from karet_defs.engine import delta
from karet_defs.engine.progress import ProgressTracker
from karet_defs.engine.report import RunReport
from karet_defs.store import keys
from karet_defs.store.base import ObjectStore, TableLocation

_UPLOAD_THREADS = 8


@dataclass(frozen=True)
class TableTarget:
    """Where one table is published and how it is laid out, and where its data files are staged until the
    commit."""

    table_id: str
    warehouse: ObjectStore
    prefix: str  # the table root's key in the warehouse
    location: TableLocation
    partition_keys: list[str]
    # Local tables are written in place (uncommitted files are invisible to readers); S3 tables are
    # staged locally and uploaded before the commit.
    staging_root: Path

    @classmethod
    def of(cls, warehouse: ObjectStore, slug: str, table: AnalyticTable, scratch: Path) -> "TableTarget":
        """The target of ``table``, staged in ``scratch`` when the warehouse is not local."""
        prefix = keys.table_prefix(slug, table.id)
        location = warehouse.table_location(prefix)
        staging_root = location.local_root or scratch / table.id
        return cls(table.id, warehouse, prefix, location, list(table.partition_keys), staging_root)


def publish(
    target: TableTarget,
    current: DeltaTable | None,
    change: delta.Commit,
    schema: pa.Schema,
    metadata: Mapping[str, str],
    report: RunReport,
    progress: ProgressTracker | None = None,
) -> int:
    """Upload the staged files of ``change``, commit them as one version and report it; return the version."""
    if progress is not None:
        progress.phase("writing")
    _upload(target, change.added)
    if progress is not None:
        progress.phase("committing")
    version = delta.commit(target.location, current, change, schema, target.partition_keys, metadata)
    partitions = change.partitions_written(target.partition_keys)
    table_report = report.tables[target.table_id]
    table_report.version = version
    table_report.partitions = partitions
    table_report.rows_written = change.rows_added
    table_report.rows_removed = change.rows_removed
    report.partitions_written += len(partitions) if target.partition_keys else int(bool(change.added))
    return version


def _upload(target: TableTarget, added: list[delta.DataFile]) -> None:
    if target.location.local_root is not None or not added:
        return

    def put(data_file: delta.DataFile) -> None:
        target.warehouse.put_file(
            target.prefix + data_file.relative,
            target.staging_root / data_file.relative,
            content_type="application/octet-stream",
        )

    with ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
        list(pool.map(put, added))
