"""Incremental runs: with a fragment cache, only new or changed raw files are parsed again."""

import pytest
from polars.testing import assert_frame_equal

from karet_defs.engine import fragments
from karet_defs.engine.run import run_pipeline
from karet_defs.store import keys
from tests.factories import col, make_pipeline, put_config, put_raw, read_table, table_files

SLUG = "inc"
RAW = f"pipelines/{SLUG}/raw/"
CONFIG = make_pipeline(
    source_columns=[("month", "int64"), ("v", "string")],
    columns=[("month", col("month")), ("v", {"kind": "upper", "input": col("v")})],
    table_schema=[{"name": "month", "type": "int64"}, {"name": "v", "type": "string"}],
    partition_keys=["month"],
)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def _seed(stores, n: int) -> None:
    put_config(stores, SLUG, CONFIG)
    for i in range(n):
        put_raw(stores, f"{RAW}{i:03d}.csv", f"month,v\n{i % 3 + 1},row{i}\n")


def test_second_run_parses_nothing_and_writes_the_same_rows(stores, cache, tmp_path):
    _seed(stores, 6)
    first = run_pipeline(stores, SLUG, cache_dir=cache)
    before = read_table(stores, SLUG, "t", tmp_path / "1")

    again = run_pipeline(stores, SLUG, cache_dir=cache)

    assert (first.files_parsed, again.files_parsed) == (6, 0)
    assert again.summary() == first.summary()
    assert_frame_equal(read_table(stores, SLUG, "t", tmp_path / "2").sort("v"), before.sort("v"))


def test_new_changed_and_deleted_files(stores, cache, tmp_path):
    _seed(stores, 4)
    run_pipeline(stores, SLUG, cache_dir=cache)

    put_raw(stores, f"{RAW}new.csv", "month,v\n1,fresh\n")
    put_raw(stores, f"{RAW}000.csv", "month,v\n1,edited\n")
    stores.lake.delete(f"{RAW}003.csv")
    report = run_pipeline(stores, SLUG, cache_dir=cache)

    assert report.files_parsed == 2
    rows = read_table(stores, SLUG, "t", tmp_path).sort("v")
    assert rows.get_column("v").to_list() == ["EDITED", "FRESH", "ROW1", "ROW2"]
    assert len(list((cache / SLUG / "m").glob("*" + fragments.SUFFIX))) == 4


def test_editing_the_mapping_reparses_everything(stores, cache, tmp_path):
    _seed(stores, 3)
    run_pipeline(stores, SLUG, cache_dir=cache)
    changed = {
        **CONFIG,
        "mappings": [
            {
                **CONFIG["mappings"][0],
                "columns": [
                    {"name": "month", "expr": col("month")},
                    {"name": "v", "expr": {"kind": "lower", "input": col("v")}},
                ],
            }
        ],
    }
    put_config(stores, SLUG, changed)

    report = run_pipeline(stores, SLUG, cache_dir=cache)

    assert report.files_parsed == 3
    assert sorted(read_table(stores, SLUG, "t", tmp_path).get_column("v").to_list()) == [
        "row0",
        "row1",
        "row2",
    ]


def test_a_bad_file_is_reported_on_every_run(stores, cache):
    _seed(stores, 2)
    put_raw(stores, f"{RAW}bad.csv", "month\n1\n")
    first = run_pipeline(stores, SLUG, cache_dir=cache)
    second = run_pipeline(stores, SLUG, cache_dir=cache)
    assert first.errors == second.errors == [f'file {RAW}bad.csv: missing required columns: ["v"]']


def test_where_can_empty_a_file_of_a_batch_and_the_empty_fragment_is_cached(stores, cache, tmp_path):
    config = {
        **CONFIG,
        "mappings": [
            {
                **CONFIG["mappings"][0],
                "where": {"kind": "ne", "left": col("v"), "right": {"kind": "str", "value": "SKIP"}},
            }
        ],
    }
    put_config(stores, SLUG, config)
    put_raw(stores, f"{RAW}a.csv", "month,v\n1,keep\n2,skip\n")
    put_raw(stores, f"{RAW}b.csv", "month,v\n1,skip\n")
    put_raw(stores, f"{RAW}c.csv", "month,v\n3,also\n")

    first = run_pipeline(stores, SLUG, cache_dir=cache)
    second = run_pipeline(stores, SLUG, cache_dir=cache)

    assert first.errors == [] and (first.files_parsed, second.files_parsed) == (3, 0)
    assert sorted(read_table(stores, SLUG, "t", tmp_path).get_column("v").to_list()) == ["ALSO", "KEEP"]


def _clean_copy(stores, tmp_path, name):
    """The table as a from-scratch run would write it (in a separate cache), for comparison."""
    run_pipeline(stores, SLUG, clean_run=True)
    return read_table(stores, SLUG, "t", tmp_path / name).sort("month", "v")


def test_a_new_file_rewrites_only_the_partitions_it_touches(stores, cache, tmp_path):
    _seed(stores, 6)
    run_pipeline(stores, SLUG, cache_dir=cache)
    before = table_files(stores, SLUG, "t")

    put_raw(stores, f"{RAW}new.csv", "month,v\n2,late\n")
    report = run_pipeline(stores, SLUG, cache_dir=cache)

    after = table_files(stores, SLUG, "t")
    assert (report.files_parsed, report.partitions_written) == (1, 1)
    assert [k for k in after if after[k] != before[k]] == ["month=2/m.parquet"]
    incremental = read_table(stores, SLUG, "t", tmp_path / "inc").sort("month", "v")
    assert_frame_equal(incremental, _clean_copy(stores, tmp_path, "clean"))


def test_removing_the_only_file_of_a_partition_removes_the_partition(stores, cache, tmp_path):
    _seed(stores, 3)  # one file per month
    run_pipeline(stores, SLUG, cache_dir=cache)

    stores.lake.delete(f"{RAW}001.csv")
    report = run_pipeline(stores, SLUG, cache_dir=cache)

    assert report.partitions_written == 0
    assert sorted(table_files(stores, SLUG, "t")) == ["month=1/m.parquet", "month=3/m.parquet"]


def test_a_tampered_warehouse_falls_back_to_a_full_rewrite(stores, cache, tmp_path):
    _seed(stores, 6)
    run_pipeline(stores, SLUG, cache_dir=cache)
    stores.warehouse.delete(keys.table_prefix(SLUG, "t") + "month=3/m.parquet")

    put_raw(stores, f"{RAW}new.csv", "month,v\n1,late\n")
    report = run_pipeline(stores, SLUG, cache_dir=cache)

    assert report.partitions_written == 3
    assert_frame_equal(
        read_table(stores, SLUG, "t", tmp_path / "inc").sort("month", "v"), _clean_copy(stores, tmp_path, "c")
    )


def test_unique_assertions_need_the_whole_table(stores, cache):
    config = {
        **CONFIG,
        "analytic_tables": [
            {
                **CONFIG["analytic_tables"][0],
                "schema": [
                    {"name": "month", "type": "int64"},
                    {"name": "v", "type": "string", "assertions": {"unique": True}},
                ],
            }
        ],
    }
    put_config(stores, SLUG, config)
    put_raw(stores, f"{RAW}a.csv", "month,v\n1,x\n")
    run_pipeline(stores, SLUG, cache_dir=cache)

    put_raw(stores, f"{RAW}b.csv", "month,v\n2,x\n")
    report = run_pipeline(stores, SLUG, cache_dir=cache)

    assert report.errors == ["assertion m: column `v` unique: 1 duplicate value(s)"]
    assert sorted(table_files(stores, SLUG, "t")) == ["month=1/m.parquet"]
