"""Runs Karet starts name their origin in the Dagster UI's "Launched by" column, not "Manually launched"."""

from collections.abc import Mapping

import dagster as dg
import pytest

from karet_defs.definitions import build_definitions
from karet_defs.orchestration import launch
from karet_defs.orchestration.launch import create_job_run, create_pipeline_run, submit_pipeline_run
from karet_defs.orchestration.maintenance import job_name, maintenance_run_config, maintenance_tags
from karet_defs.orchestration.resources import StoreResource
from karet_defs.templates import install_template


def _launched_by(tags: Mapping[str, str]) -> str:
    """What the UI shows for a run's tags (dagster-webserver ui-core `runs/CreatedByTag.tsx`)."""
    for key, value in tags.items():
        if key == "user":
            return value
        if key == "dagster/schedule_name":
            return f"schedule {value}"
        if key == "dagster/sensor_name":
            return f"sensor {value}"
    return "Manually launched"


@pytest.mark.parametrize(
    ("trigger", "shown"),
    [("manual", "Karet: manual run"), ("api", "Karet: worker API"), ("webhook", "Karet: S3 webhook")],
)
def test_runs_karet_creates_name_their_trigger(pipeline_env, local_stores, dagster_instance, trigger, shown):
    install_template(local_stores, "spending", "spending")

    prepared = create_pipeline_run(dagster_instance, "spending", trigger=trigger)

    run = dagster_instance.get_run_by_id(prepared.run_id)
    assert _launched_by(run.tags) == shown
    assert run.tags["karet/trigger"] == trigger


def test_a_maintenance_run_of_the_api_names_the_api(pipeline_env, local_stores, dagster_instance):
    install_template(local_stores, "spending", "spending")

    prepared = create_job_run(
        dagster_instance,
        job_name("spending", "expire"),
        run_config=maintenance_run_config("spending", "expire", {}),
        tags=maintenance_tags("spending", "expire", trigger="api"),
    )

    assert _launched_by(dagster_instance.get_run_by_id(prepared.run_id).tags) == "Karet: worker API"


def test_sensor_runs_name_the_sensor_and_ui_runs_stay_manual(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    defs = build_definitions(StoreResource(data_dir=str(local_settings.data_dir)))
    sensor = defs.resolve_sensor_def("spending_raw_files")

    with dg.instance_for_test() as instance:
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))

    [request] = tick.run_requests or []
    assert _launched_by({**defs.resolve_job_def("spending").run_tags, **request.tags}) == (
        "sensor spending_raw_files"
    )
    # The job's own tags are those of a run launched from the Dagster UI: that one is manual indeed.
    assert _launched_by(defs.resolve_job_def("spending").run_tags) == "Manually launched"


def test_a_run_submitted_to_the_webserver_names_its_trigger(monkeypatch):
    submitted: list[dict[str, str]] = []

    class Client:
        def submit_job_execution(self, job_name, **kwargs):
            submitted.append(kwargs["tags"])
            return "run-1"

    monkeypatch.setattr(launch, "_graphql_client", lambda url: Client())

    assert submit_pipeline_run("http://dagster", "spending", trigger="webhook") == "run-1"
    assert _launched_by(submitted[0]) == "Karet: S3 webhook"
