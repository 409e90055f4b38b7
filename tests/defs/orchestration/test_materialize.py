"""Materializing a pipeline's assets records the metadata and checks users read in the Dagster UI."""

import json

import dagster as dg

from karet_defs.catalog import read_pipeline
from karet_defs.orchestration.jobs import TAG_ERRORS, TAG_FILES_PROCESSED, TAG_PARTITIONS_WRITTEN
from karet_defs.orchestration.launch import execute_pipeline_run, failure_message
from karet_defs.orchestration.pipeline import build_pipeline_defs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.templates import install_template
from tests.factories import put_raw


def test_materialize_demo_records_metadata_and_checks(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    store = StoreResource(data_dir=str(local_settings.data_dir))
    defs = build_pipeline_defs(read_pipeline(local_stores, "spending"), "spending", store)
    assets = list(defs.assets or [])

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            assets,
            resources={"store": store},
            instance=instance,
        )
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey(["spending", "transactions"]))
        metadata = event.asset_materialization.metadata
        run = instance.get_run_by_id(result.run_id)

    assert metadata["dagster/row_count"].value == 35
    assert metadata["partitions_written"].value == 2
    assert metadata["files_processed"].value == 1
    assert metadata["errors"].value == []
    assert metadata["quarantined_files"].value == [] and metadata["file_errors"].value == []
    assert metadata["dagster/uri"].value == "pipelines/spending/clean/transactions/"
    columns = [c.name for c in metadata["dagster/column_schema"].value.columns]
    assert columns == ["date", "description", "merchant", "amount", "account", "category", "year", "month"]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "schema_matches": True,
        "no_quarantined_files": True,
        "assertions_date": True,
        "assertions_amount": True,
        "assertions_category": True,
    }
    assert run.tags[TAG_PARTITIONS_WRITTEN] == "3"  # with the year partition of the monthly_spend rollup
    assert run.tags[TAG_FILES_PROCESSED] == "1"
    assert json.loads(run.tags[TAG_ERRORS]) == []


def test_a_run_whose_only_file_fails_an_assertion_is_red_with_the_reason(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    local_stores.lake.put(
        "pipelines/spending/transactions/seed.csv", b"date,description,amount,account\n2026-04-01,X,,visa\n"
    )
    store = StoreResource(data_dir=str(local_settings.data_dir))
    defs = build_pipeline_defs(read_pipeline(local_stores, "spending"), "spending", store)

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            list(defs.assets or []),
            resources={"store": store},
            instance=instance,
            raise_on_error=False,
        )
    # The only file is quarantined, so nothing was published: the step is red, with the reason.
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure.description == (
        "nothing was published: 2 error(s): file pipelines/spending/transactions/seed.csv line 2: "
        "amount (empty) must have a value (not_null); the file is held back until it is fixed"
    )


def test_execute_pipeline_run_is_a_tagged_dagster_run(pipeline_env, local_stores, dagster_instance):
    install_template(local_stores, "spending", "spending")

    outcome = execute_pipeline_run(dagster_instance, "spending", trigger="api", clean_run=True)

    assert outcome.success
    assert (outcome.partitions_written, outcome.files_processed, outcome.errors) == (3, 1, [])
    run = dagster_instance.get_run_by_id(outcome.run_id)
    assert run.job_name == "spending"
    assert run.tags["karet/pipeline"] == "spending"
    assert run.tags["karet/trigger"] == "api"
    assert run.tags["karet/clean_run"] == "true"


def test_config_broken_after_load_fails_the_run_with_the_cause(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    store = StoreResource(data_dir=str(local_settings.data_dir))
    defs = build_pipeline_defs(read_pipeline(local_stores, "spending"), "spending", store)
    local_stores.pipelines.put("pipelines/spending/pipeline.json", b"{oops")

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            list(defs.assets or []),
            resources={"store": store},
            instance=instance,
            raise_on_error=False,
        )
        failure = failure_message(instance, result.run_id)
    assert not result.success
    assert failure is not None and failure.startswith("config_parse_failed: ")


def test_metadata_lists_are_in_a_stable_order(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    raw = "pipelines/spending/transactions/"
    put_raw(
        local_stores,
        raw + "autumn.csv",
        "date,description,amount,account\n2025-11-02,X,1,visa\n2025-09-02,Y,2,visa\n2025-10-02,Z,3,visa\n",
    )
    for name in ("z-bad.csv", "a-bad.csv"):  # each held back for its empty amounts
        put_raw(
            local_stores,
            raw + name,
            "date,description,amount,account\n2026-04-01,X,,visa\n2026-04-02,Y,,visa\n",
        )
    store = StoreResource(data_dir=str(local_settings.data_dir))
    defs = build_pipeline_defs(read_pipeline(local_stores, "spending"), "spending", store)

    with dg.instance_for_test() as instance:
        dg.materialize(list(defs.assets or []), resources={"store": store}, instance=instance)
        event = instance.get_latest_materialization_event(dg.AssetKey(["spending", "transactions"]))
    metadata = event.asset_materialization.metadata

    assert metadata["partitions"].value == [
        "year=2025/month=9",
        "year=2025/month=10",
        "year=2025/month=11",
        "year=2026/month=4",
        "year=2026/month=5",
    ]
    assert metadata["quarantined_files"].value == [raw + "a-bad.csv", raw + "z-bad.csv"]
    assert [(e["file"], e["line"]) for e in metadata["file_errors"].value] == [
        (raw + "a-bad.csv", 2),
        (raw + "a-bad.csv", 3),
        (raw + "z-bad.csv", 2),
        (raw + "z-bad.csv", 3),
    ]
    assert metadata["errors"].value == sorted(metadata["errors"].value)


def test_a_run_that_changed_nothing_records_no_materialization(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    store = StoreResource(data_dir=str(local_settings.data_dir))
    defs = build_pipeline_defs(read_pipeline(local_stores, "spending"), "spending", store)
    key = dg.AssetKey(["spending", "transactions"])

    def materializations(instance: dg.DagsterInstance) -> list[str]:
        records = instance.fetch_materializations(key, limit=10).records
        return [r.run_id for r in records]

    with dg.instance_for_test() as instance:
        first = dg.materialize(list(defs.assets or []), resources={"store": store}, instance=instance)
        idle = dg.materialize(list(defs.assets or []), resources={"store": store}, instance=instance)
        assert idle.success
        assert materializations(instance) == [first.run_id]
        # The idle run still evaluates the table's checks, so the UI shows they were looked at.
        assert {e.check_name for e in idle.get_asset_check_evaluations()} >= {"no_quarantined_files"}

        put_raw(
            local_stores,
            "pipelines/spending/transactions/may.csv",
            "date,description,amount,account\n2026-05-03,Bakery,4.5,visa\n",
        )
        changed = dg.materialize(list(defs.assets or []), resources={"store": store}, instance=instance)
        assert materializations(instance) == [changed.run_id, first.run_id]
