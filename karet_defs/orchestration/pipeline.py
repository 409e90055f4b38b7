"""``build_pipeline_defs``: everything Dagster shows for one pipeline, and the marker of a broken one."""

import dagster as dg

from karet_defs.config.models import Pipeline
from karet_defs.errors import KaretError
from karet_defs.orchestration.assets import build_external_specs, build_pipeline_assets, table_key
from karet_defs.orchestration.jobs import build_pipeline_job, dagster_name
from karet_defs.orchestration.maintenance import build_maintenance_defs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.orchestration.sensors import build_raw_files_sensor

CONFIG_ERROR_METADATA = "karet/config_error"


def build_pipeline_defs(pipeline: Pipeline, slug: str, store: StoreResource) -> dg.Definitions:
    """Source and lookup specs, the tables' multi-asset, the pipeline job and its raw-files sensor, and the
    tables' maintenance jobs with their daily schedule.

    A pipeline without tables has no job, hence no sensor and no maintenance; one without sources has nothing
    to watch.
    """
    specs = build_external_specs(pipeline, slug)
    if not pipeline.analytic_tables:
        return dg.Definitions(assets=specs)
    tables = build_pipeline_assets(pipeline, slug)
    job = build_pipeline_job(slug, [table_key(slug, t.id) for t in pipeline.analytic_tables])
    sensors = [build_raw_files_sensor(pipeline, slug, store)] if pipeline.source_containers else []
    return dg.Definitions.merge(
        dg.Definitions(assets=[*specs, tables], jobs=[job], sensors=sensors), build_maintenance_defs(slug)
    )


def build_broken_pipeline_defs(slug: str, error: KaretError) -> dg.Definitions:
    """A visible stand-in for a pipeline whose stored config cannot be loaded; its assets stay absent."""
    marker = dg.AssetSpec(
        dg.AssetKey([slug, "pipeline_config"]),
        description=f"pipeline.json of `{slug}` cannot be loaded, so its assets are absent: {error.message}",
        group_name=dagster_name(slug),
        metadata={CONFIG_ERROR_METADATA: error.code, "message": error.message},
        tags={"karet/broken": "true"},
    )
    return dg.Definitions(assets=[marker])
