"""A table folder of plain Hive Parquet from an earlier release becomes version 0 of a Delta table, in
place, with exactly its rows; converting twice changes nothing."""

import datetime as dt
import json

import polars as pl
import pytest

from karet_defs.config.models import AnalyticTable
from karet_defs.engine import delta
from karet_defs.engine.migrate_tables import OPERATION, convert_legacy_table
from karet_defs.engine.tables import iter_rows_json
from karet_defs.errors import KaretError
from karet_defs.store import keys
from tests.factories import commit_frame, read_table, table_files, write_legacy_table

TABLE = AnalyticTable.model_validate(
    {
        "id": "t",
        "schema": [
            {"name": "amount", "type": "float64"},
            {"name": "merchant", "type": "string"},
            {"name": "year", "type": "int64"},
            {"name": "day", "type": "date"},
            {"name": "card", "type": "bool"},
        ],
        "partition_keys": ["merchant", "year", "day", "card"],
    }
)
# Two mappings feeding one table, partition values needing percent-encoding, every partition type.
LEGACY = {
    "bank": pl.DataFrame(
        {
            "amount": [4.5, 40.0, 12.0],
            "note": ["coffee", None, "fuel"],
            "merchant": ["A & B / C", "A & B / C", "Shell 77"],
            "year": [2026, 2026, 2025],
            "day": [dt.date(2026, 4, 1), dt.date(2026, 4, 1), dt.date(2025, 12, 31)],
            "card": [True, True, False],
        }
    ),
    "card": pl.DataFrame(
        {
            "amount": [7.25],
            "note": ["café"],
            "merchant": ["Shell 77"],
            "year": [2025],
            "day": [dt.date(2025, 12, 31)],
            "card": [False],
        }
    ),
}


def _rows(stores, table=TABLE) -> list[dict]:
    body = b"".join(bytes(chunk) for chunk in iter_rows_json(stores.warehouse, "p", table))
    return sorted(json.loads(body)["rows"], key=lambda r: r["amount"])


def _legacy_rows() -> list[dict]:
    frame = pl.concat(LEGACY.values()).with_columns(pl.col("day").cast(pl.String))
    return sorted(json.loads(frame.write_json()), key=lambda r: r["amount"])


def test_a_legacy_table_becomes_version_0_with_the_same_rows(stores, tmp_path):
    write_legacy_table(stores, "p", "t", LEGACY, TABLE.partition_keys, tmp_path)
    files_before = table_files(stores, "p", "t")

    assert convert_legacy_table(stores.warehouse, "p", TABLE) == 0

    assert _rows(stores) == _legacy_rows()
    # In place: the same objects, plus the log.
    after = table_files(stores, "p", "t")
    assert {k: v for k, v in after.items() if not k.startswith("_delta_log/")} == files_before
    loaded = delta.open_table(delta.location(stores.warehouse, "p", "t"))
    assert loaded is not None and loaded.metadata().partition_columns == TABLE.partition_keys
    assert loaded.history(1)[0][delta.META_OPERATION] == OPERATION
    # Other Delta readers see the same rows, partition columns typed as declared.
    frame = read_table(stores, "p", "t")
    assert frame.schema["year"] == pl.Int64 and frame.schema["day"] == pl.Date
    assert frame.schema["card"] == pl.Boolean
    assert frame.height == 4


def test_converting_again_changes_nothing(stores, tmp_path):
    write_legacy_table(stores, "p", "t", LEGACY, TABLE.partition_keys, tmp_path)
    assert convert_legacy_table(stores.warehouse, "p", TABLE) == 0
    log = {k: v for k, v in table_files(stores, "p", "t").items() if k.startswith("_delta_log/")}

    assert convert_legacy_table(stores.warehouse, "p", TABLE) is None

    assert {k: v for k, v in table_files(stores, "p", "t").items() if k.startswith("_delta_log/")} == log
    assert _rows(stores) == _legacy_rows()


def test_nothing_to_convert(stores, tmp_path):
    assert convert_legacy_table(stores.warehouse, "p", TABLE) is None  # no folder at all
    assert table_files(stores, "p", "t") == {}

    commit_frame(stores, "p", "t", pl.DataFrame({"amount": [1.0], "year": [2026]}), tmp_path)
    assert convert_legacy_table(stores.warehouse, "p", TABLE) is None  # already a Delta table


def test_uncommitted_files_of_a_delta_writer_are_not_legacy(stores, tmp_path):
    # A run killed before its first commit leaves files carrying the hidden columns, and no log.
    frame = pl.DataFrame({"amount": [1.0], delta.SOURCE_COLUMN: ["raw/a.csv"], delta.MAPPING_COLUMN: ["m"]})
    write_legacy_table(stores, "p", "t", {"m.0a1b": frame}, [], tmp_path)

    assert convert_legacy_table(stores.warehouse, "p", TABLE) is None
    assert delta.open_table(delta.location(stores.warehouse, "p", "t")) is None


def test_a_value_that_does_not_parse_as_declared_stays_text(local_stores, tmp_path):
    table = AnalyticTable.model_validate(
        {"id": "t", "schema": [{"name": "year", "type": "int64"}], "partition_keys": ["year"]}
    )
    frame = pl.DataFrame({"amount": [1.0, 2.0], "year": ["2026", "unknown"]})
    write_legacy_table(local_stores, "p", "t", {"m": frame}, ["year"], tmp_path)

    assert convert_legacy_table(local_stores.warehouse, "p", table) == 0

    assert _rows(local_stores, table) == [{"amount": 1.0, "year": 2026}, {"amount": 2.0, "year": None}]
    assert read_table(local_stores, "p", "t").schema["year"] == pl.String


def test_mixed_partition_layouts_are_refused(local_stores, tmp_path):
    frame = pl.DataFrame({"amount": [1.0], "year": [2026]})
    write_legacy_table(local_stores, "p", "t", {"m": frame}, ["year"], tmp_path)
    local_stores.warehouse.put(keys.table_prefix("p", "t") + "old.parquet", b"PAR1")

    with pytest.raises(KaretError) as caught:
        convert_legacy_table(local_stores.warehouse, "p", TABLE)

    assert caught.value.code == "legacy_table_invalid"
    assert delta.open_table(delta.location(local_stores.warehouse, "p", "t")) is None
