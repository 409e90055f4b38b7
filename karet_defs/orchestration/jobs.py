"""Run tags and the per-pipeline job; tag names live here only."""

import json
import re
from collections.abc import Mapping

import dagster as dg

from karet_defs.engine.report import RunReport
from karet_defs.errors import KaretError

TAG_PIPELINE = "karet/pipeline"
TAG_TRIGGER = "karet/trigger"
TAG_CLEAN_RUN = "karet/clean_run"
TAG_PARTITIONS_WRITTEN = "karet/partitions_written"
TAG_FILES_PROCESSED = "karet/files_processed"
TAG_ERRORS = "karet/errors"
# The config version a run read (``history.versions``), set when its body starts.
TAG_CONFIG_VERSION = "karet/config_version"
# The environment (qa, uat) whose sandbox a run wrote (``orchestration.sandbox``); absent: production.
TAG_ENVIRONMENT = "karet/environment"
# Rows of quarantined raw files (``FileError.to_dict``), the first ``FILE_ERRORS_KEPT`` of the run.
TAG_FILE_ERRORS = "karet/file_errors"
FILE_ERRORS_KEPT = 20
# The process executing a run (``orchestration.liveness``): host, boot, pid and the pid's start time.
TAG_PROCESS = "karet/process"
# Maintenance runs (``orchestration.maintenance``): which operation, its per-table results, its error.
TAG_MAINTENANCE = "karet/maintenance"
TAG_COMPACT_RESULT = "karet/compact_result"
TAG_EXPIRE_RESULT = "karet/expire_result"
TAG_RESTORE_RESULT = "karet/restore_result"
TAG_MAINTENANCE_ERROR = "karet/maintenance_error"

TRIGGERS = ("manual", "webhook", "sensor", "api", "schedule")
# The Dagster UI names a run's origin from `user` (shown as given), then `dagster/schedule_name` and
# `dagster/sensor_name`, which Dagster sets itself on schedule and sensor runs; anything else reads "Manually
# launched" (ui-core `runs/CreatedByTag.tsx`). So the runs Karet creates name their trigger in `user`.
TAG_LAUNCHED_BY = "user"  # Dagster's own (`USER_TAG`), which it does not export publicly
LAUNCHED_BY = {"manual": "Karet: manual run", "api": "Karet: worker API", "webhook": "Karet: S3 webhook"}


NOTHING_PUBLISHED = "nothing was published"


def nothing_published(errors: list[str]) -> str:
    """Why a run that published no table failed: its errors, in Karet's completed-with-errors wording."""
    return f"{NOTHING_PUBLISHED}: {len(errors)} error(s): {errors[0]}"


def summary_tags(report: RunReport) -> dict[str, str]:
    """The run's Karet summary as tags, which the job records are read back from."""
    return {
        TAG_PARTITIONS_WRITTEN: str(report.partitions_written),
        TAG_FILES_PROCESSED: str(report.files_processed),
        TAG_ERRORS: json.dumps(report.errors),
        TAG_FILE_ERRORS: json.dumps([e.to_dict() for e in report.file_errors[:FILE_ERRORS_KEPT]]),
    }


def run_failure(exc: KaretError) -> dg.Failure:
    """A red step whose description carries the error's code, as the job record reports it."""
    return dg.Failure(
        description=f"{exc.code}: {exc.message}",
        metadata={"error": exc.code, "message": exc.message},
        allow_retries=False,
    )


def dagster_name(slug: str) -> str:
    """A valid Dagster job/group name for a slug (``spending-2026`` → ``spending_2026``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", slug)


def run_tags(slug: str, *, trigger: str = "manual", clean_run: bool = False) -> dict[str, str]:
    return {TAG_PIPELINE: slug, TAG_TRIGGER: trigger, TAG_CLEAN_RUN: "true" if clean_run else "false"}


def launch_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Dagster's own launch tag for a run Karet creates with these tags (none for the daemon's triggers)."""
    launched_by = LAUNCHED_BY.get(tags.get(TAG_TRIGGER, ""))
    return {TAG_LAUNCHED_BY: launched_by} if launched_by else {}


def build_pipeline_job_defs(slug: str, asset_keys: list[dg.AssetKey]) -> dg.Definitions:
    """The job that materializes every table of one pipeline in one process."""
    # Wrapped in Definitions: the type `define_asset_job` returns is not part of Dagster's public API.
    job = dg.define_asset_job(
        name=dagster_name(slug),
        selection=dg.AssetSelection.assets(*asset_keys),
        executor_def=dg.in_process_executor,
        run_tags=run_tags(slug),
        description=f"Run the whole pipeline `{slug}`: every mapping, every analytic table.",
    )
    return dg.Definitions(jobs=[job])
