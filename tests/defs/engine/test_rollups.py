"""Rollups: after any sequence of incremental runs a rollup table equals a from-scratch GROUP BY of its
source table, and a run rewrites only the target partitions over the source partitions it changed."""

import statistics
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from karet_defs.engine import delta
from karet_defs.engine.rollups import META_ROLLUP
from karet_defs.engine.run import run_pipeline
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from tests.factories import col, make_pipeline, put_config, put_raw, read_table, table_files

SLUG = "roll"
RAW = f"pipelines/{SLUG}/raw/"
BIG = {"kind": "gt", "left": col("amount"), "right": {"kind": "num", "value": 2}}
AGGREGATES: list[dict[str, Any]] = [
    {"name": "rows", "fn": "count"},
    {"name": "big", "fn": "count", "where": BIG},
    {"name": "total", "fn": "sum", "column": "amount"},
    {"name": "low", "fn": "min", "column": "amount"},
    {"name": "high", "fn": "max", "column": "amount"},
    {"name": "mean", "fn": "avg", "column": "amount"},
    {"name": "kinds", "fn": "count_distinct", "column": "amount"},
    {"name": "mid", "fn": "median", "column": "amount"},
    {"name": "big_total", "fn": "sum", "column": "amount", "where": BIG},
]


def rollup_pipeline() -> dict[str, Any]:
    config = make_pipeline(
        source_columns=[("year", "number"), ("month", "number"), ("cat", "string"), ("amount", "number")],
        columns=[
            ("year", {"kind": "cast", "input": col("year"), "to": "int64"}),
            ("month", {"kind": "cast", "input": col("month"), "to": "int64"}),
            ("cat", col("cat")),
            ("amount", {"kind": "cast", "input": col("amount"), "to": "float64"}),
        ],
        table_schema=[
            {"name": "year", "type": "int64"},
            {"name": "month", "type": "int64"},
            {"name": "cat", "type": "string"},
            {"name": "amount", "type": "float64"},
        ],
        partition_keys=["year", "month"],
    )
    config["analytic_tables"].append(
        {
            "id": "r",
            "name": "Rollup",
            "schema": [
                {"name": "year", "type": "int64"},
                {"name": "cat", "type": "string"},
                {"name": "rows", "type": "int64"},
                {"name": "big", "type": "int64"},
                {"name": "total", "type": "float64"},
                {"name": "low", "type": "float64"},
                {"name": "high", "type": "float64"},
                {"name": "mean_sum", "type": "float64"},
                {"name": "mean_count", "type": "int64"},
                {"name": "kinds", "type": "int64"},
                {"name": "mid", "type": "float64"},
                {"name": "big_total", "type": "float64"},
            ],
            "partition_keys": ["year"],
        }
    )
    config["rollups"] = [
        {
            "id": "yearly",
            "source_table_id": "t",
            "analytic_table_id": "r",
            "group_by": ["year", "cat"],
            "aggregates": AGGREGATES,
        }
    ]
    return config


def reference(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """GROUP BY year, cat of the source rows, aggregate by aggregate, in plain Python."""
    groups: dict[tuple[Any, Any], list[float | None]] = {}
    for row in rows:
        groups.setdefault((row["year"], row["cat"]), []).append(row["amount"])
    out = []
    for (year, cat), amounts in groups.items():
        values = [a for a in amounts if a is not None]
        big = [a for a in values if a > 2]
        out.append(
            (
                year,
                cat,
                len(amounts),
                len(big),
                float(sum(values)),
                min(values, default=None),
                max(values, default=None),
                float(sum(values)),
                len(values),
                len(set(values)),
                statistics.median(values) if values else None,
                float(sum(big)),
            )
        )
    return sorted(out, key=_order)


def _order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v) for v in row)


def rollup_rows(stores, tmp) -> list[tuple[Any, ...]]:
    frame = read_table(stores, SLUG, "r", tmp)
    if frame.is_empty():
        return []
    columns = [
        "year",
        "cat",
        "rows",
        "big",
        "total",
        "low",
        "high",
        "mean_sum",
        "mean_count",
        "kinds",
        "mid",
        "big_total",
    ]
    return sorted(frame.select(columns).rows(), key=_order)


rows = st.lists(
    st.fixed_dictionaries(
        {
            "year": st.sampled_from([2024, 2025, 2026]),
            "month": st.sampled_from([1, 2]),
            "cat": st.sampled_from(["a", "b", None]),
            "amount": st.none() | st.integers(min_value=0, max_value=5).map(float),
        }
    ),
    min_size=0,
    max_size=5,
)
operations = st.lists(
    st.tuples(st.sampled_from(["f1.csv", "f2.csv", "f3.csv"]), st.none() | rows), min_size=1, max_size=4
)


def csv_of(file_rows: list[dict[str, Any]]) -> str:
    lines = ["year,month,cat,amount"]
    for r in file_rows:
        amount = "" if r["amount"] is None else str(r["amount"])
        lines.append(f"{r['year']},{r['month']},{r['cat'] or ''},{amount}")
    return "\n".join(lines) + "\n"


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=operations)
def test_rollup_equals_a_group_by_after_any_incremental_runs(tmp_path_factory, operations):
    root = tmp_path_factory.mktemp("data")
    stores = build_stores(Settings(data_dir=root))
    put_config(stores, SLUG, rollup_pipeline())
    held: dict[str, list[dict[str, Any]]] = {}
    for name, file_rows in operations:
        before = held.get(name, [])
        if file_rows is None:
            if name in held:
                stores.lake.delete(RAW + name)
                del held[name]
        else:
            put_raw(stores, RAW + name, csv_of(file_rows))
            held[name] = file_rows
        touched = {r["year"] for r in before + (file_rows or [])}

        report = run_pipeline(stores, SLUG)

        assert report.errors == []
        assert {p.split("/")[0] for p in report.tables["r"].partitions} <= {f"year={y}" for y in touched}
        source = [r for file_rows_ in held.values() for r in file_rows_]
        assert rollup_rows(stores, root) == reference(source)


def test_a_run_rewrites_only_the_target_partitions_it_changed(local_stores, tmp_path):
    put_config(local_stores, SLUG, rollup_pipeline())
    put_raw(local_stores, RAW + "a.csv", "year,month,cat,amount\n2025,1,a,1\n2026,1,a,2\n")
    put_raw(local_stores, RAW + "b.csv", "year,month,cat,amount\n2026,2,b,3\n")
    run_pipeline(local_stores, SLUG)
    before = table_files(local_stores, SLUG, "r")

    put_raw(local_stores, RAW + "b.csv", "year,month,cat,amount\n2026,2,b,4\n")
    report = run_pipeline(local_stores, SLUG)

    assert report.tables["r"].partitions == ["year=2026"]
    after = table_files(local_stores, SLUG, "r")
    kept = {k for k in before if k.startswith("year=2025/")}
    assert kept and kept <= set(after)
    table = delta.open_table(local_stores.warehouse.table_location(f"pipelines/{SLUG}/clean/r/"))
    assert table is not None and META_ROLLUP in table.history(1)[0]
    assert run_pipeline(local_stores, SLUG).tables["r"].version is None  # nothing changed: no commit


def test_only_the_rollup_selected_still_catches_up(local_stores, tmp_path):
    put_config(local_stores, SLUG, rollup_pipeline())
    put_raw(local_stores, RAW + "a.csv", "year,month,cat,amount\n2025,1,a,1\n")
    run_pipeline(local_stores, SLUG, table_ids={"t"})
    assert rollup_rows(local_stores, tmp_path) == []

    report = run_pipeline(local_stores, SLUG, table_ids={"r"})

    assert report.tables["r"].version == 0
    assert rollup_rows(local_stores, tmp_path) == reference(
        [{"year": 2025, "month": 1, "cat": "a", "amount": 1.0}]
    )
