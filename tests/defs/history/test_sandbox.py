"""Sandbox runs: a QA or UAT version run into its environment's tables, production's left as they were."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from karet_defs.engine import delta
from karet_defs.errors import KaretError
from karet_defs.history import promotion, versions
from karet_defs.history.sandbox import (
    META_CONFIG_VERSION,
    META_ENVIRONMENT,
    EnvironmentWarehouse,
    VersionPipelines,
    environment_stores,
    run_sandbox,
)
from karet_defs.store import keys
from tests.factories import put_sandbox_pipeline, read_table, stored_objects, table_version


def _outside_sandboxes(stores, slug):
    sandboxes = f"{keys.pipeline_prefix(slug)}{keys.ENVIRONMENTS_FOLDER}"
    return {k: v for k, v in stored_objects(stores).items() if not k.partition(":")[2].startswith(sandboxes)}


def test_a_sandbox_run_writes_its_version_under_its_environment_and_nothing_else(stores):
    put_sandbox_pipeline(stores, "sb")
    production = read_table(stores, "sb", "t")
    before, version_before = _outside_sandboxes(stores, "sb"), table_version(stores, "sb", "t")

    report = run_sandbox(stores, "sb", 2, "qa")

    assert report.errors == [] and report.tables["t"].version == 0
    assert _outside_sandboxes(stores, "sb") == before
    assert table_version(stores, "sb", "t") == version_before
    assert_frame_equal(read_table(stores, "sb", "t"), production)
    sandbox = read_table(environment_stores(stores, "sb", "qa"), "sb", "t").sort("n")
    expected = pl.DataFrame(
        {
            "id": ["a", "b", "C"],
            "n": [1, 2, 3],
            "note": ["new"] * 3,
            "month": ["2026-01", "2026-01", "2026-02"],
        }
    )
    assert_frame_equal(sandbox, expected, check_column_order=False)
    written = [i.key for i in stores.warehouse.list(keys.sandbox_tables_prefix("sb", "qa"))]
    assert written and all(k.startswith("pipelines/sb/env/qa/clean/t/") for k in written)


def test_each_sandbox_commit_records_its_version_and_environment(local_stores):
    put_sandbox_pipeline(local_stores, "sb")

    run_sandbox(local_stores, "sb", 2, "qa", commit_info={"karet.job_id": "run-1"})

    sandbox = environment_stores(local_stores, "sb", "qa").warehouse
    info = delta.commit_info(delta.location(sandbox, "sb", "t"), 0, sandbox, keys.table_prefix("sb", "t"))
    assert info is not None
    assert (info[META_CONFIG_VERSION], info[META_ENVIRONMENT], info["karet.job_id"]) == ("2", "qa", "run-1")


@pytest.mark.parametrize("environment", ["development", "production", "retired"])
def test_only_a_version_in_qa_or_uat_runs_in_a_sandbox(local_stores, environment):
    put_sandbox_pipeline(local_stores, "sb")
    if environment == "development":
        versions.save_config(
            local_stores, "sb", local_stores.pipelines.get(keys.version_key("sb", 1)), author="t"
        )
        version = 3
    else:
        version = 1  # production; retired once 2 goes there
        if environment == "retired":
            request = promotion.promote(local_stores, "sb", 2, actor="t").approval_request_id
            promotion.approve(local_stores, request or "", actor="t", reason=None)
            request = promotion.promote(local_stores, "sb", 2, actor="t").approval_request_id
            promotion.approve(local_stores, request or "", actor="t", reason=None)
    before = stored_objects(local_stores)

    with pytest.raises(KaretError, match=f"is in {environment}") as raised:
        run_sandbox(local_stores, "sb", version, "qa")

    assert raised.value.code == "invalid_environment"
    assert stored_objects(local_stores) == before


def test_the_warehouse_view_moves_only_the_tables_and_refuses_writes_elsewhere(local_stores):
    view = EnvironmentWarehouse(local_stores.warehouse, "sb", "uat")
    view.put("pipelines/sb/clean/t/x.parquet", b"1")

    assert local_stores.warehouse.get("pipelines/sb/env/uat/clean/t/x.parquet") == b"1"
    assert local_stores.warehouse.head("pipelines/sb/clean/t/x.parquet") is None
    assert [i.key for i in view.list("pipelines/sb/clean/")] == ["pipelines/sb/clean/t/x.parquet"]
    assert view.table_location("pipelines/sb/clean/t/").uri.rstrip("/").endswith("sb/env/uat/clean/t")
    for write in (
        lambda: view.put("pipelines/sb/pipeline.json", b"{}"),
        lambda: view.delete("pipelines/sb/raw/a.csv"),
        lambda: list(view.list("pipelines/sb/")),
    ):
        with pytest.raises(KaretError):
            write()


def test_the_pipelines_view_serves_the_version_and_writes_nothing(local_stores):
    local_stores.pipelines.put(keys.config_key("sb"), b"live")
    view = VersionPipelines(local_stores.pipelines, "sb", b"version two")

    assert view.get(keys.config_key("sb")) == b"version two"
    assert view.head(keys.config_key("sb")).size == len(b"version two")
    with pytest.raises(KaretError, match="sandbox run may not write"):
        view.put(keys.config_key("sb"), b"x")
    assert local_stores.pipelines.get(keys.config_key("sb")) == b"live"
