"""Staging a mapping's rows as data files under the table's staging root, before they are published: one
Parquet file per (raw file, partition), in Hive folders named by ``render_segment``, the partition key
columns kept only in the path (and the Delta log), so a later change of one raw file touches only its own
data files. Staged files that are not to be published are discarded."""

from pathlib import Path

import polars as pl
from polars.io.partition import FileProviderArgs

from karet_defs.engine import delta
from karet_defs.engine.write import render_segment

_FILE_KEY = "__karet_file"  # a copy of the source column, consumed by the partitioned sink
_NULL_SEGMENT = "__null__"


class PartitionedSink:
    """A lazy sink writing one Parquet file per (raw file, partition) under ``root``, Hive folders named by
    ``render_segment``, the partition key columns kept only in the path (and the Delta log)."""

    def __init__(self, root: Path, partition_keys: list[str], mapping_id: str) -> None:
        self.root, self.partition_keys, self.mapping_id = root, partition_keys, mapping_id
        self._records: list[tuple[str, dict[str, str | None], str]] = []

    def query(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """The query writing ``frame``, to be collected with others."""
        return frame.with_columns(pl.col(delta.SOURCE_COLUMN).alias(_FILE_KEY)).sink_parquet(
            pl.PartitionBy(
                self.root,
                key=[*self.partition_keys, _FILE_KEY],
                include_key=False,
                file_path_provider=self._path_of,
                approximate_bytes_per_file=None,
            ),
            compression="zstd",
            statistics=True,
            mkdir=True,
            lazy=True,
        )

    def _path_of(self, args: FileProviderArgs) -> str:
        *values, source = args.partition_keys.row(0)
        segments: list[str] = []
        partition_values: dict[str, str | None] = {}
        for key, value in zip(self.partition_keys, values, strict=True):
            # A null key fails the mapping (row checks); the file is written and then discarded.
            segments.append(f"{key}={_NULL_SEGMENT if value is None else render_segment(value)}")
            partition_values[key] = None if value is None else delta.partition_string(value)
        relative = "/".join([*segments, delta.data_file_name(self.mapping_id, source)])
        self._records.append((relative, partition_values, source))
        return relative

    def describe(self) -> list[delta.DataFile]:
        """The files written, described for the commit."""
        return [
            delta.describe_file(self.root / rel, rel, values, self.mapping_id, source)
            for rel, values, source in self._records
        ]

    def discard(self) -> None:
        """Delete every file written."""
        discard_files(self.root, [relative for relative, _, _ in self._records])
        self._records = []


def discard_files(root: Path, relatives: list[str]) -> None:
    """Delete staged files (paths under ``root``) that will not be published."""
    for relative in relatives:
        (root / relative).unlink(missing_ok=True)
