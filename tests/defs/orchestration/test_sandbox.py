"""The sandbox job: loaded for every pipeline, tagged with its environment and version, failing clearly."""

import json

import dagster as dg

from karet_defs.definitions import build_definitions
from karet_defs.history import versions
from karet_defs.orchestration.jobs import TAG_CONFIG_VERSION, TAG_ENVIRONMENT, TAG_FILES_PROCESSED
from karet_defs.orchestration.resources import StoreResource
from karet_defs.orchestration.sandbox import build_sandbox_job, sandbox_job_name, sandbox_run_config
from karet_defs.store import keys
from karet_defs.templates import install_template
from tests.factories import put_sandbox_pipeline, sandbox_config, table_version


def test_every_loaded_pipeline_has_a_sandbox_job_even_without_tables(local_settings, local_stores):
    install_template(local_stores, "spending-2026", "spending")
    install_template(local_stores, "empty", "blank")

    defs = build_definitions(StoreResource(data_dir=str(local_settings.data_dir)))

    dg.Definitions.validate_loadable(defs)
    for slug in ("spending-2026", "empty"):
        job = defs.resolve_job_def(sandbox_job_name(slug))
        assert (job.run_tags["karet/pipeline"], job.run_tags["karet/clean_run"]) == (slug, "true")


def _execute(settings, instance, slug: str, environment: str, version: int) -> dg.ExecuteInProcessResult:
    return build_sandbox_job(slug).execute_in_process(
        run_config=sandbox_run_config(slug, environment, version),
        resources={"store": StoreResource(data_dir=str(settings.data_dir))},
        instance=instance,
        raise_on_error=False,
    )


def test_a_sandbox_run_is_tagged_with_what_it_ran_and_leaves_production_alone(
    local_settings, local_stores, dagster_instance
):
    put_sandbox_pipeline(local_stores, "sb")
    before = table_version(local_stores, "sb", "t")

    result = _execute(local_settings, dagster_instance, "sb", "qa", 2)

    assert result.success
    tags = dagster_instance.get_run_by_id(result.run_id).tags
    assert (tags[TAG_ENVIRONMENT], tags[TAG_CONFIG_VERSION], tags[TAG_FILES_PROCESSED]) == ("qa", "2", "1")
    assert table_version(local_stores, "sb", "t") == before
    assert list(local_stores.warehouse.list(keys.sandbox_tables_prefix("sb", "qa")))


def test_a_version_outside_qa_and_uat_fails_the_run_with_its_code(
    local_settings, local_stores, dagster_instance
):
    put_sandbox_pipeline(local_stores, "sb")
    versions.save_config(local_stores, "sb", json.dumps(sandbox_config(changed=True)).encode(), author="t")

    result = _execute(local_settings, dagster_instance, "sb", "qa", 3)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure.description.startswith("invalid_environment: version 3 is in development")
    assert not list(local_stores.warehouse.list(keys.sandbox_tables_prefix("sb", "qa")))
