"""Facts of one table version come from its Delta log, not from a listing of the table's folder."""

import datetime as dt

import polars as pl

from karet_defs.engine.stats import TableStats, table_stats
from karet_defs.store import keys
from tests.factories import commit_frame


def test_facts_of_the_current_and_of_an_older_version(stores, tmp_path):
    frame = pl.DataFrame({"amount": [1.0, 2.0, 3.0], "year": [2025, 2026, 2026]})
    commit_frame(stores, "p", "t", frame, tmp_path, partition_keys=["year"])
    commit_frame(stores, "p", "t", frame.head(1), tmp_path, partition_keys=["year"], replace=True)
    # A file no version holds (a run that died before committing) is not counted.
    stores.warehouse.put(keys.table_prefix("p", "t") + "year=2024/stray.parquet", b"PAR1")

    current = table_stats(stores.warehouse, "p", "t")
    first = table_stats(stores.warehouse, "p", "t", version=0)

    assert (current.version, current.file_count, current.row_count) == (1, 1, 1)
    assert (first.version, first.file_count, first.row_count) == (0, 2, 3)
    assert current.bytes > 0 and first.bytes > current.bytes
    now = dt.datetime.now(dt.UTC)
    assert first.last_modified is not None and current.last_modified is not None
    assert first.last_modified <= current.last_modified <= now


def test_a_table_never_written(stores):
    assert table_stats(stores.warehouse, "p", "t") == TableStats(
        file_count=0, bytes=0, row_count=0, last_modified=None, version=None
    )
