"""Dimensions and rollups in Dagster: file-backed dimensions are assets upstream of the tables using them and
are watched by the raw-files sensor; a rollup is its own asset downstream of its source, with a table's
metadata and checks."""

import dagster as dg

from karet_defs.catalog import read_pipeline
from karet_defs.definitions import build_definitions
from karet_defs.orchestration.assets import SCHEMA_CHECK, dimension_key, table_key
from karet_defs.orchestration.pipeline import build_pipeline_defs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.orchestration.sensors import build_raw_files_sensor
from karet_defs.templates import install_template
from tests.defs.engine.test_dimensions import DIMS, RAW, SLUG, geo_pipeline
from tests.factories import put_config, put_raw


def test_file_backed_dimension_is_an_asset_upstream_of_its_table(local_settings, local_stores):
    put_config(local_stores, SLUG, geo_pipeline())
    store = StoreResource(data_dir=str(local_settings.data_dir))

    graph = build_definitions(store).resolve_asset_graph()
    assert dimension_key(SLUG, "geo") in graph.get(table_key(SLUG, "t")).parent_keys
    spec = graph.get(dimension_key(SLUG, "geo"))
    assert spec.metadata["dagster/uri"] == DIMS


def test_a_changed_dimension_csv_asks_for_a_run(local_settings, local_stores):
    put_config(local_stores, SLUG, geo_pipeline())
    put_raw(local_stores, RAW + "a.csv", "code,amount\nca,1\n")
    put_raw(local_stores, DIMS + "geo.csv", "code,country,region\nCA,Canada,Americas\n")
    store = StoreResource(data_dir=str(local_settings.data_dir))
    sensor = build_raw_files_sensor(read_pipeline(local_stores, SLUG), SLUG, store, grace_seconds=0)

    with dg.instance_for_test() as instance:
        first = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1
        idle = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert isinstance(idle, dg.SensorResult) and not idle.run_requests

        put_raw(local_stores, DIMS + "geo.csv", "code,country,region\nCA,Kanada,Amerika\n")
        changed = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))

    assert isinstance(changed, dg.SensorResult)
    [request] = changed.run_requests or []
    assert request.run_key.startswith("1:")


def test_the_template_rollup_is_an_asset_downstream_of_transactions(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    store = StoreResource(data_dir=str(local_settings.data_dir))
    monthly = table_key("spending", "monthly_spend")
    graph = build_definitions(store).resolve_asset_graph()
    assert table_key("spending", "transactions") in graph.get(monthly).parent_keys
    defs = build_pipeline_defs(read_pipeline(local_stores, "spending"), "spending", store)

    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets or []), resources={"store": store}, instance=instance)
        assert result.success
        event = instance.get_latest_materialization_event(monthly)
        checks = {
            e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.asset_key == monthly
        }

    metadata = event.asset_materialization.metadata
    assert metadata["partitions"].value == ["year=2026"]
    assert metadata["dagster/row_count"].value > 0
    assert [c.name for c in metadata["dagster/column_schema"].value.columns] == [
        "year",
        "month",
        "category",
        "spend",
        "transactions",
    ]
    assert checks[SCHEMA_CHECK] is True
