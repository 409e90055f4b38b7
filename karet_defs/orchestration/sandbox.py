"""The sandbox job of one pipeline: a config version in QA or UAT run into its environment's sandbox tables.

One op job per pipeline (``<slug>_sandbox``), given the version and the environment as run config, so a
version saved after the code location loaded needs no reload. It is tagged ``karet/pipeline`` (it shows in
the pipeline's job history and takes its turn in the one-run-per-pipeline queue), ``karet/environment``
and ``karet/config_version``, holds the pipeline's write lock as a run does, and records the same summary
tags as the tables' asset. It materializes no asset: the pipeline's assets are production's tables.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from karet_defs.engine.delta import META_JOB_ID, META_TRIGGER
from karet_defs.errors import KaretError
from karet_defs.history.sandbox import run_sandbox
from karet_defs.orchestration.jobs import (
    TAG_CLEAN_RUN,
    TAG_CONFIG_VERSION,
    TAG_ENVIRONMENT,
    TAG_PIPELINE,
    TAG_TRIGGER,
    dagster_name,
    nothing_published,
    run_failure,
    summary_tags,
)
from karet_defs.orchestration.liveness import executing
from karet_defs.orchestration.resources import StoreResource


class SandboxConfig(dg.Config):
    version: int = Field(description="The config version to run; it must be in qa or uat.")
    environment: str = Field(description="Whose sandbox it writes: qa or uat.")


def sandbox_job_name(slug: str) -> str:
    return f"{dagster_name(slug)}_sandbox"


def _op_name(slug: str) -> str:
    return f"sandbox_{dagster_name(slug)}"


def sandbox_tags(slug: str, environment: str, version: int, *, trigger: str = "manual") -> dict[str, str]:
    return {
        TAG_PIPELINE: slug,
        TAG_TRIGGER: trigger,
        TAG_CLEAN_RUN: "true",
        TAG_ENVIRONMENT: environment,
        TAG_CONFIG_VERSION: str(version),
    }


def sandbox_run_config(slug: str, environment: str, version: int) -> dict[str, Any]:
    return {"ops": {_op_name(slug): {"config": {"version": version, "environment": environment}}}}


def build_sandbox_job(slug: str) -> dg.JobDefinition:
    """The job running a version of the pipeline into a sandbox."""

    @dg.op(
        name=_op_name(slug),
        out=dg.Out(dg.Nothing),
        pool=f"karet_{dagster_name(slug)}",
        description=f"Run a QA or UAT config version of `{slug}` into its sandbox tables",
    )
    def _sandbox(context: dg.OpExecutionContext, config: SandboxConfig, store: StoreResource) -> None:
        # A run launched from the Dagster UI carries only the job's tags: name what it runs.
        context.instance.add_run_tags(
            context.run_id,
            {TAG_ENVIRONMENT: config.environment, TAG_CONFIG_VERSION: str(config.version)},
        )
        settings = store.settings()
        try:
            with executing(context, settings, slug):
                report = run_sandbox(
                    store.stores(),
                    slug,
                    config.version,
                    config.environment,
                    log=context.log,
                    commit_info={
                        META_JOB_ID: context.run_id,
                        META_TRIGGER: context.run.tags.get(TAG_TRIGGER, "manual"),
                    },
                )
        except KaretError as exc:
            raise run_failure(exc) from exc
        context.instance.add_run_tags(context.run_id, summary_tags(report))
        if report.errors and all(t.version is None for t in report.tables.values()):
            raise dg.Failure(description=nothing_published(report.errors), allow_retries=False)

    return dg.JobDefinition(
        graph_def=dg.GraphDefinition(name=sandbox_job_name(slug), node_defs=[_sandbox]),
        description=f"Run a QA or UAT config version of `{slug}` on its raw files into the environment's "
        "sandbox tables (`env/<environment>/clean/`), never touching production's.",
        run_tags={TAG_PIPELINE: slug, TAG_CLEAN_RUN: "true"},
        executor_def=dg.in_process_executor,
    )
