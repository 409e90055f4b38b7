"""``build_pipeline_defs``: everything Dagster shows for one pipeline, and the markers of an unfinished or a
broken one."""

import dagster as dg

from karet_defs.config.models import Pipeline
from karet_defs.errors import KaretError
from karet_defs.orchestration.assets import build_external_specs, build_pipeline_assets, table_key
from karet_defs.orchestration.jobs import build_pipeline_job_defs, dagster_name
from karet_defs.orchestration.maintenance import build_maintenance_defs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.orchestration.sandbox import build_sandbox_job
from karet_defs.orchestration.sensors import build_raw_files_sensor
from karet_defs.store import keys

CONFIG_ERROR_METADATA = "karet/config_error"
CONFIG_ASSET = "pipeline_config"


def config_key(slug: str) -> dg.AssetKey:
    """The marker standing for a pipeline's ``pipeline.json`` while it yields no table to show."""
    return dg.AssetKey([slug, CONFIG_ASSET])


def build_pipeline_defs(pipeline: Pipeline, slug: str, store: StoreResource) -> dg.Definitions:
    """Source and lookup specs, the tables' multi-asset, the pipeline job and its raw-files sensor, the
    tables' maintenance jobs with their daily schedule, and the sandbox job.

    A pipeline without tables has no job, hence no sensor and no maintenance: its group shows its sources and
    a marker saying what to add. One without sources has nothing to watch. Every pipeline has the sandbox
    job: the versions it runs are read when it runs, and one may have tables production lacks.
    """
    owners = [store.settings().default_owner]
    specs = build_external_specs(pipeline, slug, owners)
    if not pipeline.analytic_tables:
        return dg.Definitions(
            assets=[*specs, _unfinished_marker(pipeline, slug, owners)], jobs=[build_sandbox_job(slug)]
        )
    tables = build_pipeline_assets(pipeline, slug, owners)
    pipeline_job = build_pipeline_job_defs(slug, [table_key(slug, t.id) for t in pipeline.analytic_tables])
    sensors = [build_raw_files_sensor(pipeline, slug, store)] if pipeline.source_containers else []
    return dg.Definitions.merge(
        dg.Definitions(assets=[*specs, tables], jobs=[build_sandbox_job(slug)], sensors=sensors),
        pipeline_job,
        build_maintenance_defs(slug),
    )


def _unfinished_marker(pipeline: Pipeline, slug: str, owners: list[str]) -> dg.AssetSpec:
    # Without it a pipeline made from the `blank` template would not appear in Dagster at all.
    if pipeline.source_containers:
        sources = ", ".join(f"`{s.id}`" for s in pipeline.source_containers)
        todo = f"add an analytic table and a mapping that fills it from {sources}"
    else:
        todo = (
            "add a source container (the key prefix its raw files land under), an analytic table and a "
            "mapping from the source to the table"
        )
    return dg.AssetSpec(
        config_key(slug),
        description=(
            f"Pipeline `{slug}` has no analytic tables yet, so it has nothing to run: {todo} in its "
            f"`{keys.config_key(slug)}`. Its tables, job and raw-files sensor appear here once they exist."
        ),
        group_name=dagster_name(slug),
        metadata={"dagster/uri": keys.config_key(slug)},
        tags={"karet/unfinished": "true"},
        owners=owners,
    )


def build_broken_pipeline_defs(slug: str, error: KaretError, store: StoreResource) -> dg.Definitions:
    """A visible stand-in for a pipeline whose stored config cannot be loaded; its assets stay absent."""
    marker = dg.AssetSpec(
        config_key(slug),
        description=f"pipeline.json of `{slug}` cannot be loaded, so its assets are absent: {error.message}",
        group_name=dagster_name(slug),
        metadata={CONFIG_ERROR_METADATA: error.code, "message": error.message},
        tags={"karet/broken": "true"},
        owners=[store.settings().default_owner],
    )
    return dg.Definitions(assets=[marker])
