"""The engine end to end on real Parquet, on the local store and on S3 (moto server)."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from karet_defs.engine import delta
from karet_defs.engine.run import run_pipeline
from karet_defs.errors import ConfigInvalid, ConfigParseFailed, PipelineConfigNotFound
from karet_defs.store import keys
from karet_defs.templates import install_template
from tests.factories import (
    col,
    make_pipeline,
    put_config,
    put_raw,
    read_table,
    table_partitions,
    table_version,
)

SLUG = "demo"
AMOUNTS = make_pipeline(
    source_columns=[("day", "string"), ("who", "string"), ("amount", "number")],
    columns=[
        ("day", {"kind": "parse_date", "input": col("day"), "format": "%Y-%m-%d"}),
        ("who", {"kind": "upper", "input": col("who")}),
        ("amount", {"kind": "cast", "input": col("amount"), "to": "float64"}),
        ("month", {"kind": "month", "input": {"kind": "parse_date", "input": col("day")}}),
    ],
    table_schema=[
        {"name": "day", "type": "date"},
        {"name": "who", "type": "string"},
        {"name": "amount", "type": "float64", "assertions": {"min": 0}},
        {"name": "month", "type": "int64"},
    ],
    partition_keys=["month"],
)
RAW = f"pipelines/{SLUG}/raw/"


def test_spending_template_gives_two_month_partitions(stores, tmp_path):
    install_template(stores, "spending", "spending")

    report = run_pipeline(stores, "spending")

    # Two month partitions of `transactions`, one year partition of its `monthly_spend` rollup.
    assert report.summary() == {"partitions_written": 3, "files_processed": 1, "errors": []}
    assert table_partitions(stores, "spending", "transactions") == ["year=2026/month=4", "year=2026/month=5"]
    rows = read_table(stores, "spending", "transactions", tmp_path)
    assert rows.group_by("month").len().sort("month").rows() == [(4, 18), (5, 17)]
    by_description = {r["description"]: r for r in rows.to_dicts()}
    assert by_description["PAYROLL DEPOSIT ACME CORP"]["category"] == "INCOME"
    assert by_description["PAYROLL DEPOSIT ACME CORP"]["merchant"] == "PAYROLL DEPOSIT ACME CORP"
    assert by_description["AMAZON PAYROLL DEPOSIT"]["category"] == "INCOME"
    assert by_description["AMAZON PAYROLL DEPOSIT"]["merchant"] == "AMAZON"
    assert by_description["PG&E WEB ONLINE"]["category"] == "BILLS"
    assert by_description["BLUE BOTTLE CAFE"]["category"] == "FOOD"
    assert by_description["SHELL OIL 5531"]["category"] == "TRANSPORT"
    assert by_description["BOOKSHOP, MAIN ST"]["category"] == "OTHER"
    assert rows.schema["date"] == pl.Date
    assert rows.schema["amount"] == pl.Float64


def test_partition_payload_drops_key_columns(stores, tmp_path):
    put_config(stores, SLUG, AMOUNTS)
    put_raw(stores, RAW + "a.csv", "day,who,amount\n2026-01-05,ann,1.5\n2026-02-01,bob,2\n")

    run_pipeline(stores, SLUG)

    table = delta.open_table(delta.location(stores.warehouse, SLUG, "t"))
    assert table is not None
    (path,) = [p for p in delta.active_files(table).get_column("path") if p.startswith("month=1/")]
    local = tmp_path / "one.parquet"
    stores.warehouse.download(keys.table_prefix(SLUG, "t") + path, local)
    assert_frame_equal(
        pl.read_parquet(local),
        pl.DataFrame(
            {
                "day": [dt.date(2026, 1, 5)],
                "who": ["ANN"],
                "amount": [1.5],
                "_karet_source": [RAW + "a.csv"],
                "_karet_mapping": ["m"],
            }
        ),
    )


def test_rerun_with_nothing_new_commits_nothing_and_a_change_replaces_its_rows(stores):
    put_config(stores, SLUG, AMOUNTS)
    put_raw(stores, RAW + "a.csv", "day,who,amount\n2026-01-05,ann,1.5\n2026-02-01,bob,2\n")
    run_pipeline(stores, SLUG)
    first = read_table(stores, SLUG, "t")

    again = run_pipeline(stores, SLUG)
    assert again.summary() == {"partitions_written": 0, "files_processed": 1, "errors": []}
    assert table_version(stores, SLUG, "t") == 0
    assert_frame_equal(read_table(stores, SLUG, "t").sort("day"), first.sort("day"))

    put_raw(stores, RAW + "a.csv", "day,who,amount\n2026-01-05,ann,1.5\n")
    report = run_pipeline(stores, SLUG)
    assert report.partitions_written == 1
    assert table_version(stores, SLUG, "t") == 1
    assert table_partitions(stores, SLUG, "t") == ["month=1"]
    assert_frame_equal(read_table(stores, SLUG, "t", version=0).sort("day"), first.sort("day"))


def test_clean_run_commits_a_version_replacing_every_row(stores):
    put_config(stores, SLUG, AMOUNTS)
    put_raw(stores, RAW + "a.csv", "day,who,amount\n2026-01-05,ann,1.5\n")
    run_pipeline(stores, SLUG)

    report = run_pipeline(stores, SLUG, clean_run=True)

    assert report.partitions_written == 1
    assert table_version(stores, SLUG, "t") == 1
    assert read_table(stores, SLUG, "t").get_column("who").to_list() == ["ANN"]
    assert read_table(stores, SLUG, "t", version=0).get_column("who").to_list() == ["ANN"]


BAD_FILES = [
    ("missing_column.csv", "day,amount\n2026-01-01,1\n", 'missing required columns: ["who"]'),
    (
        "bad_amount.csv",
        "day,who,amount\n2026-01-01,ann,1\n2026-01-02,bob,twelve\n",
        "row 2: could not parse 'twelve'",
    ),
    ("latin1.csv", "day,who,amount\n2026-01-01,Jos\xe9,1\n".encode("latin-1"), "not valid UTF-8"),
    ("empty.csv", "", "empty file"),
]


def test_bad_files_are_reported_and_good_ones_written(stores, tmp_path):
    put_config(stores, SLUG, AMOUNTS)
    put_raw(stores, RAW + "good.csv", "\ufeffday,who,amount\n2026-01-05,ann,1.5\n")
    put_raw(stores, RAW + "quoted.csv", 'day,who,amount\n2026-01-06,"smith, jo\nline two",3\n')
    for name, content, _ in BAD_FILES:
        put_raw(stores, RAW + name, content)

    report = run_pipeline(stores, SLUG)

    assert report.files_processed == 6
    assert report.partitions_written == 1
    assert len(report.errors) == len(BAD_FILES)
    for name, _, reason in BAD_FILES:
        assert any(e.startswith(f"file {RAW}{name}: ") and reason in e for e in report.errors), (
            name,
            report.errors,
        )
    rows = read_table(stores, SLUG, "t", tmp_path).sort("day")
    assert rows.get_column("who").to_list() == ["ANN", "SMITH, JO\nLINE TWO"]


def test_a_changed_file_failing_an_assertion_is_held_back_and_its_old_rows_leave(stores):
    put_config(stores, SLUG, AMOUNTS)
    put_raw(stores, RAW + "a.csv", "day,who,amount\n2026-01-05,ann,1.5\n")
    put_raw(stores, RAW + "b.csv", "day,who,amount\n2026-02-05,bob,2.5\n")
    run_pipeline(stores, SLUG)

    put_raw(stores, RAW + "a.csv", "day,who,amount\n2026-01-05,ann,-4\n2026-03-01,bob,-1\n")
    report = run_pipeline(stores, SLUG)

    assert report.errors == [
        f'file {RAW}a.csv line 2: amount "-4" must be at least 0 (and 1 more row(s)); '
        "the file is held back until it is fixed"
    ]
    # What a clean run over the good file alone gives: b's row; a's old rows went with its old version.
    assert read_table(stores, SLUG, "t").get_column("who").to_list() == ["BOB"]
    assert table_version(stores, SLUG, "t") == 1


def test_when_every_file_is_held_back_karets_ingest_error_stands(stores):
    put_config(stores, SLUG, AMOUNTS)
    put_raw(stores, RAW + "a.csv", "day,who,amount\n2026-01-05,ann,-4\n")

    report = run_pipeline(stores, SLUG)

    assert report.errors[-1] == "ingest m: no files succeeded during ingestion"
    assert report.partitions_written == 0
    assert table_version(stores, SLUG, "t") is None


def test_null_partition_key_fails_the_mapping(stores):
    put_config(stores, SLUG, AMOUNTS)
    put_raw(stores, RAW + "a.csv", "day,who,amount\nnot-a-date,ann,1.5\n")

    report = run_pipeline(stores, SLUG)

    assert report.errors == [
        f'file {RAW}a.csv line 2: month "not-a-date" does not match %Y-%m-%d; month must have a value '
        "(a partition key: coalesce it to a default); the file is held back until it is fixed",
        "ingest m: no files succeeded during ingestion",
    ]
    assert table_version(stores, SLUG, "t") is None


def test_dedup_keeps_first_row_in_file_order(stores, tmp_path):
    config = make_pipeline(
        source_columns=[("id", "string"), ("v", "int64")],
        columns=[("id", col("id")), ("v", col("v"))],
        table_schema=[{"name": "id", "type": "string"}, {"name": "v", "type": "int64"}],
        dedup_keys=["id"],
    )
    put_config(stores, SLUG, config)
    put_raw(stores, RAW + "1.csv", "id,v\na,1\nb,2\na,3\n")
    put_raw(stores, RAW + "2.csv", "id,v\nb,4\nc,5\n")

    run_pipeline(stores, SLUG)

    assert_frame_equal(
        read_table(stores, SLUG, "t", tmp_path).sort("id"),
        pl.DataFrame({"id": ["a", "b", "c"], "v": [1, 2, 5]}),
    )


def test_string_partition_values_are_percent_encoded(stores):
    config = make_pipeline(
        source_columns=[("city", "string")],
        columns=[("city", col("city")), ("n", {"kind": "num", "value": 1})],
        table_schema=[{"name": "city", "type": "string"}, {"name": "n", "type": "float64"}],
        partition_keys=["city"],
    )
    put_config(stores, SLUG, config)
    put_raw(stores, RAW + "a.csv", "city\nSão Paulo\nNew York\n")

    run_pipeline(stores, SLUG)

    assert table_partitions(stores, SLUG, "t") == ["city=New%20York", "city=S%C3%A3o%20Paulo"]
    assert sorted(read_table(stores, SLUG, "t").get_column("city")) == ["New York", "São Paulo"]


def test_no_input_files_is_a_quiet_success(stores):
    put_config(stores, SLUG, AMOUNTS)
    assert run_pipeline(stores, SLUG).summary() == {
        "partitions_written": 0,
        "files_processed": 0,
        "errors": [],
    }


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (None, PipelineConfigNotFound),
        (b"{not json", ConfigParseFailed),
        ({"version": 1, "source_containers": [], "lookup_mappings": [], "mappings": []}, ConfigParseFailed),
        ({**AMOUNTS, "analytic_tables": []}, ConfigInvalid),
    ],
    ids=["missing", "invalid-json", "missing-array", "dangling-table"],
)
def test_config_errors_abort_before_writing(stores, config, error):
    if config is not None:
        put_config(stores, SLUG, config)
    with pytest.raises(error):
        run_pipeline(stores, SLUG)
