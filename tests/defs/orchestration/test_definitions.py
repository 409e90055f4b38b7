"""Definitions built from the store: several pipelines load, a broken one is replaced by a visible marker."""

import dagster as dg

from karet_defs.definitions import build_definitions
from karet_defs.orchestration.pipeline import CONFIG_ERROR_METADATA
from karet_defs.orchestration.resources import StoreResource
from karet_defs.templates import install_template
from tests.factories import put_config


def _load(settings) -> dg.Definitions:
    return build_definitions(StoreResource(data_dir=str(settings.data_dir)))


def test_several_pipelines_load_and_a_broken_one_only_hides_itself(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    install_template(local_stores, "spending-2026", "spending")
    install_template(local_stores, "empty", "blank")
    put_config(local_stores, "broken", '{"version": 1, "source_containers": [')

    defs = _load(local_settings)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    asset_keys = {k.to_user_string() for k in graph.get_all_asset_keys()}

    for slug in ("spending", "spending-2026"):
        assert f"{slug}/transactions" in asset_keys
        assert f"{slug}/raw/transactions_raw" in asset_keys
        assert f"{slug}/lookup/categories" in asset_keys
        table = graph.get(dg.AssetKey([slug, "transactions"]))
        assert table.group_name == slug.replace("-", "_")
        assert {p.to_user_string() for p in table.parent_keys} == {
            f"{slug}/raw/transactions_raw",
            f"{slug}/lookup/categories",
            f"{slug}/lookup/merchants",
        }
    assert defs.resolve_job_def("spending_2026").run_tags["karet/pipeline"] == "spending-2026"
    assert not any(k.startswith("broken/") and k != "broken/pipeline_config" for k in asset_keys)
    marker = graph.get(dg.AssetKey(["broken", "pipeline_config"]))
    assert marker.metadata[CONFIG_ERROR_METADATA] == "config_parse_failed"
    assert "cannot be loaded" in (marker.description or "")


def test_invalid_config_marker_names_the_validation_error(local_settings, local_stores):
    install_template(local_stores, "ok", "spending")
    config = {
        "version": 1,
        "source_containers": [],
        "lookup_mappings": [],
        "mappings": [{"id": "m", "source_container_id": "nope", "analytic_table_id": "t", "columns": []}],
        "analytic_tables": [{"id": "t", "name": "T", "schema": []}],
    }
    put_config(local_stores, "dangling", config)

    graph = _load(local_settings).resolve_asset_graph()

    marker = graph.get(dg.AssetKey(["dangling", "pipeline_config"]))
    assert marker.metadata[CONFIG_ERROR_METADATA] == "config_invalid"
    assert "dangling source_container reference to `nope`" in marker.description
    assert graph.has(dg.AssetKey(["ok", "transactions"]))
