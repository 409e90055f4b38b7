"""A table version as DuckDB reads it: one footer when every file has every column, all footers otherwise."""

import polars as pl
from deltalake import write_deltalake

from karet_defs.catalog import read_pipeline
from karet_defs.engine import delta
from karet_defs.engine.run import run_pipeline
from karet_defs.query.datasets import ParquetFiles, table_source
from karet_defs.query.engine import run_query
from karet_defs.templates import install_template


def test_files_missing_a_column_added_later_are_read_with_nulls_for_it(local_stores):
    install_template(local_stores, "spending", "spending")
    run_pipeline(local_stores, "spending")
    table = read_pipeline(local_stores, "spending").table("transactions")
    assert table is not None
    before = table_source(local_stores.warehouse, "spending", table)
    assert isinstance(before, ParquetFiles) and before.uniform

    # A later writer adds a column: the files written before it do not hold it.
    where = delta.location(local_stores.warehouse, "spending", "transactions")
    extra = pl.DataFrame(
        {"date": ["2026-06-01"], "amount": [1.0], "note": ["added later"], "year": [2026], "month": [6]}
    ).with_columns(pl.col("date").str.to_date())
    write_deltalake(
        where.uri, extra.to_arrow(), mode="append", schema_mode="merge", partition_by=["year", "month"]
    )

    after = table_source(local_stores.warehouse, "spending", table)
    answer = run_query(
        local_stores, "spending", "SELECT count(*) AS n, count(note) AS noted FROM transactions"
    )

    assert isinstance(after, ParquetFiles) and not after.uniform
    assert answer.rows == [[36, 1]]
