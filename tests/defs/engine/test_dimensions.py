"""Dimensions in runs: file-backed rows from lake CSVs, a changed CSV rebuilding the tables using it, bad
files named in the error, and an E4 config (upgraded from E2) giving the E2 pipeline's rows."""

import json

import pytest

from karet_defs.config.upgrade import upgrade_lookups
from karet_defs.engine.run import run_pipeline
from karet_defs.expr import dimensions
from karet_defs.templates import install_template
from tests.factories import col, make_pipeline, put_config, put_raw, read_table

SLUG = "geo"
RAW = f"pipelines/{SLUG}/raw/"
DIMS = f"pipelines/{SLUG}/dims/geo/"


def geo_pipeline() -> dict:
    config = make_pipeline(
        source_columns=[("code", "string"), ("amount", "number")],
        columns=[
            ("code", col("code")),
            ("country", {"kind": "dim_ref", "dim_id": "geo", "input": col("code")}),
            ("region", {"kind": "dim_ref", "dim_id": "geo", "value": "region", "input": col("code")}),
        ],
        table_schema=[
            {"name": "code", "type": "string"},
            {"name": "country", "type": "string"},
            {"name": "region", "type": "string"},
        ],
    )
    del config["lookup_mappings"]
    config["dimensions"] = [
        {
            "id": "geo",
            "match": "exact",
            "case_insensitive": True,
            "on_miss": {"literal": "UNKNOWN"},
            "rows": {"path_prefix": "dims/geo/", "key": "code", "values": ["country", "region"]},
        }
    ]
    return config


def rows_by_code(stores, tmp_path) -> dict[str, tuple[str, str]]:
    frame = read_table(stores, SLUG, "t", tmp_path)
    return {r["code"]: (r["country"], r["region"]) for r in frame.to_dicts()}


def test_file_backed_rows_and_a_changed_csv_rebuilds_the_table(stores, tmp_path):
    put_config(stores, SLUG, geo_pipeline())
    put_raw(stores, RAW + "a.csv", "code,amount\nca,1\nDE,2\nXX,3\n")
    put_raw(
        stores, DIMS + "geo.csv", 'code,country,region\nCA,Canada,Americas\nDE,"Germany, Fed. Rep.",Europe\n'
    )

    report = run_pipeline(stores, SLUG)

    assert report.errors == []
    assert rows_by_code(stores, tmp_path) == {
        "ca": ("Canada", "Americas"),
        "DE": ("Germany, Fed. Rep.", "Europe"),
        "XX": ("UNKNOWN", "UNKNOWN"),
    }

    # No raw file changed, only the dimension: every row it feeds is recomputed.
    put_raw(stores, DIMS + "geo.csv", "code,country,region\nCA,Kanada,Amerika\nXX,Nowhere,None\n")
    report = run_pipeline(stores, SLUG)

    assert report.errors == []
    assert report.tables["t"].rows_removed == 3
    assert rows_by_code(stores, tmp_path) == {
        "ca": ("Kanada", "Amerika"),
        "DE": ("UNKNOWN", "UNKNOWN"),
        "XX": ("Nowhere", "None"),
    }
    assert run_pipeline(stores, SLUG).tables["t"].version is None  # unchanged: no commit


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (
            {
                "a.csv": "code,country,region\nCA,Canada,Americas\n",
                "b.csv": "code,country,region\nca,Can,Am\n",
            },
            f"dimension `geo` has duplicate key `ca` (in {DIMS}a.csv and {DIMS}b.csv)",
        ),
        (
            {"a.csv": "code,country\nCA,Canada\n"},
            f"dimension `geo` file {DIMS}a.csv is missing column `region`",
        ),
        ({"a.csv": "code,country,region\n" + "".join(f"K{i},c,r\n" for i in range(4))}, None),
    ],
    ids=["duplicate_key", "missing_column", "over_cap"],
)
def test_a_bad_dimension_file_fails_its_mappings_naming_the_file(stores, monkeypatch, files, error):
    monkeypatch.setattr(dimensions, "MAX_DIMENSION_ROWS", 3)
    put_config(stores, SLUG, geo_pipeline())
    put_raw(stores, RAW + "a.csv", "code,amount\nca,1\n")
    for name, body in files.items():
        put_raw(stores, DIMS + name, body)

    report = run_pipeline(stores, SLUG)

    expected = error or f"dimension `geo` exceeds the 3-row cap (in {DIMS}a.csv)"
    assert report.errors == [f"ingest m: evaluator error: {expected}"]
    assert report.tables["t"].mappings_failed == ["m"]


def test_a_dimension_without_files_says_where_it_looked(stores):
    put_config(stores, SLUG, geo_pipeline())
    put_raw(stores, RAW + "a.csv", "code,amount\nca,1\n")

    report = run_pipeline(stores, SLUG)

    assert report.errors == [f"ingest m: evaluator error: dimension `geo` has no CSV file under {DIMS}"]


def test_upgraded_spending_template_gives_the_rows_of_its_lookups(local_stores, tmp_path):
    install_template(local_stores, "lookups", "spending")
    install_template(local_stores, "dims", "spending")
    raw = local_stores.pipelines.get("pipelines/dims/pipeline.json")
    upgraded = upgrade_lookups(json.loads(raw))
    assert upgraded.changed and "lookup_mappings" not in upgraded.config
    assert [d["id"] for d in upgraded.config["dimensions"]] == ["categories", "merchants"]
    put_config(local_stores, "dims", upgraded.config)

    e2, e4 = run_pipeline(local_stores, "lookups"), run_pipeline(local_stores, "dims")

    assert e2.errors == e4.errors == []
    for table in ("transactions", "monthly_spend"):
        before = read_table(local_stores, "lookups", table, tmp_path)
        after = read_table(local_stores, "dims", table, tmp_path)
        assert before.height > 0
        assert before.sort(before.columns).equals(after.sort(after.columns)), table
