"""A pipeline's maintenance jobs and daily schedule: defined with its tags, run against real tables."""

import json

import dagster as dg
import pytest

from karet_defs.catalog import read_pipeline
from karet_defs.engine import delta
from karet_defs.engine.run import run_pipeline
from karet_defs.orchestration.jobs import TAG_COMPACT_RESULT, TAG_EXPIRE_RESULT, TAG_MAINTENANCE
from karet_defs.orchestration.maintenance import maintenance_result, maintenance_run_config
from karet_defs.orchestration.pipeline import build_pipeline_defs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.templates import install_template
from tests.factories import put_raw, read_table

SLUG = "spending-2026"


@pytest.fixture
def defs(local_settings, local_stores) -> dg.Definitions:
    install_template(local_stores, SLUG, "spending")
    store = StoreResource(data_dir=str(local_settings.data_dir))
    return dg.Definitions.merge(
        build_pipeline_defs(read_pipeline(local_stores, SLUG), SLUG, store),
        dg.Definitions(resources={"store": store}),
    )


def _two_versions(stores) -> None:
    run_pipeline(stores, SLUG)
    put_raw(
        stores,
        f"pipelines/{SLUG}/transactions/more.csv",
        "date,description,amount,account\n2026-05-01,Starbucks #1,4.50,visa\n",
    )
    run_pipeline(stores, SLUG)


def test_jobs_and_a_running_daily_schedule_are_defined_with_the_pipeline_tag(defs):
    dg.Definitions.validate_loadable(defs)
    for operation in ("compact", "expire", "restore", "maintenance"):
        job = defs.resolve_job_def(f"spending_2026_{operation}")
        assert job.run_tags["karet/pipeline"] == SLUG
        assert job.run_tags[TAG_MAINTENANCE] == operation
    schedule = defs.resolve_schedule_def("spending_2026_daily_maintenance")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "spending_2026_maintenance"
    minute, hour, *rest = schedule.cron_schedule.split()
    assert 0 <= int(minute) < 60 and 2 <= int(hour) <= 4 and rest == ["*", "*", "*"]

    with dg.build_schedule_context() as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.tags["karet/trigger"] == "schedule" and request.tags["karet/pipeline"] == SLUG


def test_the_scheduled_job_compacts_then_expires_every_written_table(defs, local_stores, monkeypatch):
    monkeypatch.setenv("KARET_TABLE_VERSIONS", "1")
    _two_versions(local_stores)
    before = sorted(read_table(local_stores, SLUG, "transactions").rows())

    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("spending_2026_maintenance").execute_in_process(instance=instance)
        compacted = maintenance_result(instance, result.run_id, "compact")
        expired = maintenance_result(instance, result.run_id, "expire")
        run = instance.get_run_by_id(result.run_id)
        observations = [
            e.asset_observation_data.asset_observation.metadata["maintenance"].value
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
        ]

    assert result.success
    # The template's rollup table was written too, so it is kept tidy as well.
    assert [c["table"] for c in compacted] == ["transactions", "monthly_spend"]
    assert json.loads(compacted[0]["details_json"])["rewritten_files"] > 0
    assert json.loads(expired[0]["details_json"])["oldest_version"] == 2  # the compaction
    assert json.loads(run.tags[TAG_COMPACT_RESULT]) == compacted
    assert json.loads(run.tags[TAG_EXPIRE_RESULT]) == expired
    assert observations == ["compact", "compact", "expire", "expire"]  # one per table
    assert sorted(read_table(local_stores, SLUG, "transactions").rows()) == before
    table = delta.open_table(delta.location(local_stores.warehouse, SLUG, "transactions"))
    assert table.history(1)[0][delta.META_JOB_ID] == result.run_id


def test_a_failed_operation_records_its_error_for_the_api(defs, local_stores):
    _two_versions(local_stores)
    job = defs.resolve_job_def("spending_2026_restore")
    config = maintenance_run_config(SLUG, "restore", {"table_id": "transactions", "version": 9})

    with dg.instance_for_test() as instance:
        result = job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)
        assert not result.success
        with pytest.raises(delta.TableVersionNotFound, match="version 9"):
            maintenance_result(instance, result.run_id, "restore")


def test_restore_job_records_the_new_version(defs, local_stores):
    _two_versions(local_stores)
    first = sorted(read_table(local_stores, SLUG, "transactions", version=0).rows())
    job = defs.resolve_job_def("spending_2026_restore")
    config = maintenance_run_config(SLUG, "restore", {"table_id": "transactions", "version": 0})

    with dg.instance_for_test() as instance:
        result = job.execute_in_process(run_config=config, instance=instance)
        restored = maintenance_result(instance, result.run_id, "restore")

    assert restored == {"table": "transactions", "restored_version": 0, "version": 2}
    assert sorted(read_table(local_stores, SLUG, "transactions").rows()) == first
