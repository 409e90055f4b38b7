"""Definitions built from the store: several pipelines load, a broken one is replaced by a visible marker."""

import dagster as dg
import pytest
from pydantic import ValidationError

from karet_defs.definitions import build_definitions
from karet_defs.orchestration.pipeline import CONFIG_ERROR_METADATA, config_key
from karet_defs.orchestration.resources import StoreResource
from karet_defs.settings import Settings
from karet_defs.templates import install_template
from tests.factories import col, make_pipeline, put_config


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


def test_a_pipeline_without_tables_shows_its_group_and_what_to_add(local_settings, local_stores):
    install_template(local_stores, "empty", "blank")
    config = make_pipeline(
        source_columns=[("a", "string")], columns=[("a", col("a"))], table_schema=[], path_prefix="in/"
    )
    put_config(local_stores, "started", {**config, "mappings": [], "analytic_tables": []})

    defs = _load(local_settings)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()

    empty = graph.get(config_key("empty"))
    assert empty.group_name == "empty"
    assert "`empty` has no analytic tables yet" in (empty.description or "")
    assert "add a source container" in (empty.description or "")
    started = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys() if k.path[0] == "started"}
    assert set(started) == {"started/pipeline_config", "started/raw/src"}
    assert "add an analytic table and a mapping that fills it from `src`" in (
        started["started/pipeline_config"].description or ""
    )
    assert "No mapping reads these files yet" in (started["started/raw/src"].description or "")
    assert {g.group_name for g in started.values()} == {"started"}
    assert defs.jobs is None or not any(j.name in ("empty", "started") for j in defs.jobs)


def test_every_asset_is_owned_by_the_default_owner(local_settings, local_stores, monkeypatch):
    monkeypatch.delenv("KARET_DEFAULT_OWNER", raising=False)
    install_template(local_stores, "spending", "spending")
    install_template(local_stores, "empty", "blank")
    put_config(local_stores, "broken", "{")

    graph = _load(local_settings).resolve_asset_graph()

    owners = {k.to_user_string(): graph.get(k).owners for k in graph.get_all_asset_keys()}
    assert set(owners) >= {"spending/transactions", "spending/raw/transactions_raw", "empty/pipeline_config"}
    assert set(map(tuple, owners.values())) == {("team:karet",)}

    monkeypatch.setenv("KARET_DEFAULT_OWNER", "data@example.com")
    graph = _load(local_settings).resolve_asset_graph()
    assert graph.get(dg.AssetKey(["spending", "transactions"])).owners == ["data@example.com"]
    assert graph.get(config_key("broken")).owners == ["data@example.com"]


@pytest.mark.parametrize("owner", ["karet", "team:", "someone@localhost"])
def test_an_owner_dagster_would_refuse_is_refused_by_its_setting(owner, monkeypatch):
    monkeypatch.setenv("KARET_DEFAULT_OWNER", owner)
    with pytest.raises(ValidationError, match="KARET_DEFAULT_OWNER must be an email or `team:<name>`"):
        Settings()


def test_a_broken_pipeline_is_reported_in_one_line_per_reload(local_settings, local_stores, caplog):
    put_config(local_stores, "half-typed", '{"version": 1, "source_containers": [')
    caplog.set_level("WARNING", logger="karet.definitions")

    # Dagster builds the definitions more than once per code-server load; the log says it once.
    _load(local_settings)
    _load(local_settings)
    lines = [r.getMessage() for r in caplog.records if r.name == "karet.definitions"]
    assert len(lines) == 1
    assert lines[0].startswith("karet: pipeline half-typed not loaded (config_parse_failed: ")
    assert "fix pipelines/half-typed/pipeline.json" in lines[0]
    assert all(r.exc_info is None for r in caplog.records)

    put_config(local_stores, "half-typed", '{"version": 1, "source_containers": {}}')
    _load(local_settings)
    lines = [r.getMessage() for r in caplog.records if r.name == "karet.definitions"]
    assert len(lines) == 2, "a different fault is news and is logged"
