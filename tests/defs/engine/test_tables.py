"""Rows of one Delta version as JSON: partition columns restored and typed, hidden columns, paging, time
travel; on the local store and on the moto S3 server."""

import datetime as dt
import json

import polars as pl
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from karet_defs.config.models import AnalyticTable
from karet_defs.engine import delta
from karet_defs.engine.delta import HIDDEN_COLUMNS
from karet_defs.engine.tables import iter_rows_json
from karet_defs.errors import KaretError
from tests.factories import commit_frame

TABLE = AnalyticTable.model_validate(
    {
        "id": "t",
        "schema": [
            {"name": "amount", "type": "float64"},
            {"name": "merchant", "type": "string"},
            {"name": "year", "type": "int64"},
            {"name": "day", "type": "date"},
        ],
        "partition_keys": ["merchant", "year"],
    }
)

V0 = pl.DataFrame(
    {
        "amount": [4.5, 40.0, 12.0, 7.25, 3.0],
        "day": [dt.date(2026, 4, d) for d in (1, 2, 3, 4, 5)],
        "_karet_source": ["raw/a.csv"] * 3 + ["raw/b.csv"] * 2,
        "_karet_mapping": ["m"] * 5,
        "merchant": ["A & B / C", "A & B / C", "Shell 77", "Shell 77", "Shell 77"],
        "year": pl.Series([2026, 2026, 2026, 2025, 2025], dtype=pl.Int32),
    }
)
V1 = pl.DataFrame(
    {
        "amount": [99.0],
        "day": [dt.date(2026, 5, 1)],
        "_karet_source": ["raw/c.csv"],
        "_karet_mapping": ["m"],
        "merchant": ["Café"],
        "year": pl.Series([2026], dtype=pl.Int32),
    }
)


def _rows(stores, table=TABLE, **kwargs) -> list[dict]:
    body = b"".join(bytes(chunk) for chunk in iter_rows_json(stores.warehouse, "p", table, **kwargs))
    return json.loads(body)["rows"]


def _expected(frame: pl.DataFrame, *, hidden: bool = False) -> list[dict]:
    """What a reader sees: the file columns, then the partition columns; dates as ISO text."""
    shown = frame.select([c for c in frame.columns if hidden or c not in HIDDEN_COLUMNS])
    ordered = shown.select(
        *[c for c in shown.columns if c not in TABLE.partition_keys], *TABLE.partition_keys
    )
    return json.loads(ordered.with_columns(pl.col("day").cast(pl.String)).write_json())


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["merchant"], r["year"], r["day"]))


@pytest.fixture
def two_versions(stores, tmp_path):
    """Version 0 with V0's rows in three partitions, version 1 replacing them with V1's."""
    assert commit_frame(stores, "p", "t", V0, tmp_path, partition_keys=TABLE.partition_keys) == 0
    assert (
        commit_frame(stores, "p", "t", V1, tmp_path, partition_keys=TABLE.partition_keys, replace=True) == 1
    )
    return stores


def test_rows_of_the_current_version_with_typed_partition_columns(two_versions):
    assert _rows(two_versions) == [
        {"amount": 99.0, "day": "2026-05-01", "merchant": "Café", "year": 2026},
    ]


def test_rows_of_an_older_version(two_versions):
    rows = _rows(two_versions, version=0)
    assert _sorted(rows) == _sorted(_expected(V0))


def test_hidden_columns_only_when_asked(two_versions):
    assert _sorted(_rows(two_versions, version=0, include_hidden=True)) == _sorted(_expected(V0, hidden=True))
    assert _rows(two_versions, include_hidden=True)[0]["_karet_source"] == "raw/c.csv"


@pytest.mark.parametrize("version", [7, 2**31, 2**63 - 1, 2**70])
def test_an_unknown_version_is_version_not_found(two_versions, version):
    with pytest.raises(KaretError) as caught:
        next(iter_rows_json(two_versions.warehouse, "p", TABLE, version=version))
    assert caught.value.code == "version_not_found"


@pytest.mark.parametrize(
    ("offset", "limit"),
    [(0, None), (0, 0), (1, 2), (2, 1), (2, 3), (3, None), (4, 10), (5, None), (100, None)],
)
def test_offset_and_limit_page_through_files(two_versions, offset, limit):
    every = _rows(two_versions, version=0)
    end = None if limit is None else offset + limit
    assert _rows(two_versions, version=0, offset=offset, limit=limit) == every[offset:end]


def test_a_table_never_written_has_no_rows(stores):
    assert _rows(stores) == []
    with pytest.raises(KaretError) as caught:
        _rows(stores, version=0)
    assert caught.value.code == "version_not_found"


def test_partition_values_take_the_declared_type(stores, tmp_path):
    # The table's Delta schema says string; the config declares int64, so readers see numbers.
    frame = pl.DataFrame({"amount": [1.0], "year": ["2026"]})
    commit_frame(stores, "p", "y", frame, tmp_path, partition_keys=["year"])
    table = AnalyticTable.model_validate(
        {"id": "y", "schema": [{"name": "year", "type": "int64"}], "partition_keys": ["year"]}
    )
    assert _rows(stores, table) == [{"amount": 1.0, "year": 2026}]


def test_files_written_before_a_column_was_added_show_it_null(stores):
    # A column added by a schema merge: the older file lacks it, as any Delta reader fills it.
    where = delta.location(stores.warehouse, "p", "e")
    options = where.storage_options or None
    write_deltalake(where.uri, pa.table({"a": [1]}), storage_options=options)
    grown = pa.table({"a": [2], "b": ["new"]})
    write_deltalake(where.uri, grown, mode="append", schema_mode="merge", storage_options=options)
    table = AnalyticTable.model_validate({"id": "e"})

    assert sorted(_rows(stores, table), key=lambda r: r["a"]) == [{"a": 1, "b": None}, {"a": 2, "b": "new"}]
