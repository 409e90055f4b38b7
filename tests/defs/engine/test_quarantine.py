"""Bad data is quarantined by file: the good files' rows are published, each bad file is named with its line,
column, value and what the column expects, and a fixed file is picked up by the next run."""

import polars as pl
from hypothesis import HealthCheck, given, settings, strategies as st

from karet_defs.engine.run import run_pipeline
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from tests.factories import col, make_pipeline, put_config, put_raw, read_table

SLUG = "q"
RAW = f"pipelines/{SLUG}/raw/"
CONFIG = make_pipeline(
    source_columns=[("date", "string"), ("amount", "string"), ("category", "string"), ("who", "string")],
    columns=[
        ("date", {"kind": "parse_date", "input": col("date"), "format": "%Y-%m-%d"}),
        ("amount", {"kind": "cast", "input": col("amount"), "to": "float64"}),
        ("category", col("category")),
        ("who", col("who")),
        ("month", {"kind": "month", "input": {"kind": "parse_date", "input": col("date")}}),
    ],
    table_schema=[
        {"name": "date", "type": "date", "assertions": {"not_null": True}},
        {"name": "amount", "type": "float64", "assertions": {"not_null": True}},
        {"name": "category", "type": "string", "assertions": {"accepted_values": ["FOOD", "RENT"]}},
        {"name": "who", "type": "string", "assertions": {"not_null": True}},
        {"name": "month", "type": "int64"},
    ],
    partition_keys=["month"],
)
HEADER = "date,amount,category,who\n"
GOOD = HEADER + "2026-01-05,12.5,FOOD,ann\n2026-02-01,900,RENT,bob\n"
# Each bad file breaks one check on its third line (the header is line 1).
BAD = {
    "dates.csv": (HEADER + "2026-03-01,1,FOOD,cy\n07/15/2026,2,FOOD,di\n", 3, "date", "07/15/2026"),
    "amounts.csv": (HEADER + "2026-03-02,1,FOOD,ed\n2026-03-03,lots,FOOD,fi\n", 3, "amount", "lots"),
    "nulls.csv": (HEADER + "2026-03-04,1,FOOD,gus\n2026-03-05,2,FOOD,\n", 3, "who", None),
    "categories.csv": (HEADER + "2026-03-06,1,FOOD,hal\n2026-03-07,2,TOYS,ivy\n", 3, "category", "TOYS"),
}


def _rows(local_stores) -> pl.DataFrame:
    return read_table(local_stores, SLUG, "t").sort("date", "who")


def test_good_rows_are_published_and_each_bad_file_is_named_with_line_column_and_value(local_stores):
    put_config(local_stores, SLUG, CONFIG)
    put_raw(local_stores, RAW + "good.csv", GOOD)
    for name, (content, *_) in BAD.items():
        put_raw(local_stores, RAW + name, content)

    report = run_pipeline(local_stores, SLUG)

    assert _rows(local_stores).get_column("who").to_list() == ["ann", "bob"]
    assert sorted(report.tables["t"].quarantined) == sorted(RAW + name for name in BAD)
    found = {(e.file, e.line, e.column, e.value) for e in report.file_errors}
    expected = {(RAW + name, line, column, value) for name, (_, line, column, value) in BAD.items()}
    # The bad date also leaves the partition key `month` (computed from it) empty, on the same line.
    assert found == expected | {(RAW + "dates.csv", 3, "month", "07/15/2026")}
    assert (
        f'file {RAW}dates.csv line 3: date "07/15/2026" does not match %Y-%m-%d; date must have a value '
        "(not_null); the file is held back until it is fixed"
    ) in report.errors
    assert (
        f'file {RAW}categories.csv line 3: category "TOYS" must be one of [FOOD, RENT]; '
        "the file is held back until it is fixed"
    ) in report.errors
    assert report.partitions_written == 2


def test_a_fixed_file_is_picked_up_by_the_next_run(local_stores):
    put_config(local_stores, SLUG, CONFIG)
    put_raw(local_stores, RAW + "good.csv", GOOD)
    put_raw(local_stores, RAW + "dates.csv", BAD["dates.csv"][0])
    run_pipeline(local_stores, SLUG)

    put_raw(local_stores, RAW + "dates.csv", HEADER + "2026-03-01,1,FOOD,cy\n2026-07-15,2,FOOD,di\n")
    report = run_pipeline(local_stores, SLUG)

    assert report.errors == [] and report.file_errors == []
    assert _rows(local_stores).get_column("who").to_list() == ["ann", "bob", "cy", "di"]


def test_a_bad_file_never_wins_a_dedup_key(local_stores):
    config = {**CONFIG, "analytic_tables": [{**CONFIG["analytic_tables"][0], "dedup_keys": ["date"]}]}
    put_config(local_stores, SLUG, config)
    # Sorting first, the bad file holds the first row of 2026-01-05; it must not shadow the good one.
    put_raw(local_stores, RAW + "a.csv", HEADER + "2026-01-05,1,TOYS,bad\n")
    put_raw(local_stores, RAW + "b.csv", GOOD)

    report = run_pipeline(local_stores, SLUG)

    assert report.tables["t"].quarantined == [RAW + "a.csv"]
    assert _rows(local_stores).get_column("who").to_list() == ["ann", "bob"]


CONTENTS = [GOOD, *(content for content, *_ in BAD.values())]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(st.sampled_from(range(len(CONTENTS))), min_size=1, max_size=5),
    second=st.lists(st.sampled_from(range(len(CONTENTS))), min_size=1, max_size=5),
)
def test_any_mix_of_good_and_bad_files_publishes_exactly_the_good_ones(tmp_path_factory, first, second):
    mixed = _stores(tmp_path_factory.mktemp("mixed"))
    only_good = _stores(tmp_path_factory.mktemp("good"))
    put_config(mixed, SLUG, CONFIG)
    put_config(only_good, SLUG, CONFIG)
    # Two runs; the second round rewrites the first files (good by bad, bad by good), later ones stay.
    final = dict(enumerate(first))
    for round_ in (first, second):
        for index, kind in enumerate(round_):
            put_raw(mixed, f"{RAW}{index}.csv", CONTENTS[kind])
            final[index] = kind
        run_pipeline(mixed, SLUG)
    for index, kind in final.items():
        if kind == 0:
            put_raw(only_good, f"{RAW}{index}.csv", CONTENTS[kind])
    run_pipeline(only_good, SLUG, clean_run=True)

    assert _sorted(read_table(mixed, SLUG, "t")).equals(_sorted(read_table(only_good, SLUG, "t")))


def _stores(folder):
    return build_stores(Settings(data_dir=folder, s3_bucket=""))


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("date", "who", "amount") if frame.height else pl.DataFrame()
