"""Incremental runs converge: any sequence of raw-file changes, runs, clean runs and compactions leaves
exactly the rows a clean run over the final raw files gives (issue 12's property)."""

import tempfile
from pathlib import Path

import polars as pl
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from polars.testing import assert_frame_equal

from karet_defs.engine import delta
from karet_defs.engine.run import run_pipeline
from karet_defs.store.base import Stores
from karet_defs.store.local import LocalStore
from tests.factories import col, make_pipeline, put_config, put_raw, read_table

SLUG = "prop"
RAW = f"pipelines/{SLUG}/raw/"


def _config(dedup: bool) -> dict:
    return make_pipeline(
        source_columns=[("id", "string"), ("month", "int64"), ("amount", "float64")],
        columns=[("id", col("id")), ("month", col("month")), ("amount", col("amount"))],
        table_schema=[
            {"name": "id", "type": "string"},
            {"name": "month", "type": "int64"},
            {"name": "amount", "type": "float64"},
        ],
        partition_keys=["month"],
        dedup_keys=["id"] if dedup else None,
    )


rows = st.lists(
    st.tuples(st.sampled_from("abcdefg"), st.integers(1, 3), st.integers(-5, 5)), min_size=0, max_size=6
)
operation = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 4), rows),
    st.tuples(st.just("remove"), st.integers(0, 4)),
    st.tuples(st.just("run")),
    st.tuples(st.just("clean")),
    st.tuples(st.just("compact")),
)


def _csv(content: list[tuple[str, int, int]]) -> str:
    return "id,month,amount\n" + "".join(f"{i},{m},{a}\n" for i, m, a in content)


def _stores(root: Path) -> Stores:
    store = LocalStore(root)
    return Stores(pipelines=store, lake=store, warehouse=store)


def _rows(stores: Stores) -> pl.DataFrame:
    frame = read_table(stores, SLUG, "t")
    if frame.is_empty():
        return pl.DataFrame(schema={"id": pl.String, "amount": pl.Float64, "month": pl.Int64})
    return frame.select("id", "amount", "month").sort(pl.all())


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dedup=st.booleans(), operations=st.lists(operation, min_size=1, max_size=10))
def test_any_sequence_converges_to_a_clean_run_over_the_final_files(dedup, operations):
    with tempfile.TemporaryDirectory() as tmp:
        stores = _stores(Path(tmp) / "incremental")
        put_config(stores, SLUG, _config(dedup))
        files: dict[str, str] = {}
        for op in operations:
            if op[0] == "put":
                files[f"{op[1]}.csv"] = _csv(op[2])
                put_raw(stores, RAW + f"{op[1]}.csv", files[f"{op[1]}.csv"])
            elif op[0] == "remove":
                files.pop(f"{op[1]}.csv", None)
                stores.lake.delete(RAW + f"{op[1]}.csv")
            elif op[0] in ("run", "clean"):
                report = run_pipeline(stores, SLUG, clean_run=op[0] == "clean")
                assert report.errors == []
            else:
                where = delta.location(stores.warehouse, SLUG, "t")
                if delta.open_table(where) is not None:
                    DeltaTable(where.uri).optimize.compact()
        assert run_pipeline(stores, SLUG).errors == []

        reference = _stores(Path(tmp) / "reference")
        put_config(reference, SLUG, _config(dedup))
        for name, content in files.items():
            put_raw(reference, RAW + name, content)
        run_pipeline(reference, SLUG, clean_run=True)

        assert_frame_equal(_rows(stores), _rows(reference))
