"""How a raw file's evaluated rows (a fragment) are stored in the engine cache: uncompressed Arrow IPC.

A fragment is written on every first or clean run, in the same query that writes the tables, and read back
only by later runs. Measured on 500 MB of CSV (2 cores): Parquet fragments (LZ4) added 2.2 s of CPU to an
8.6 s transform, Arrow IPC with LZ4 2.2 s, uncompressed IPC 0.7 s; the price is disk, about 2.6 times the
CSV's size, in a cache that can be deleted at any time.
"""

from pathlib import Path

import polars as pl

SUFFIX = ".arrow"


def scan_fragments(paths: list[Path], *, path_column: str | None = None) -> pl.LazyFrame:
    return pl.scan_ipc(paths, include_file_paths=path_column)


def sink_fragment(frame: pl.LazyFrame, target: Path | pl.PartitionBy) -> pl.LazyFrame:
    """A lazy sink of ``frame`` as fragment(s); collect it, alone or with other sinks."""
    return frame.sink_ipc(target, compression="uncompressed", mkdir=True, lazy=True)


def write_fragment(frame: pl.DataFrame, target: Path) -> None:
    frame.write_ipc(target, compression="uncompressed")


def fragment_rows(paths: list[Path]) -> int:
    return scan_fragments(paths).select(pl.len()).collect().item() if paths else 0
