"""Models of the worker endpoints."""

from pydantic import BaseModel, Field


class WorkerRunRequest(BaseModel):
    pipeline_prefix: str = Field(description="`pipelines/<slug>/`")
    clean_run: bool = False


class WorkerRunResult(BaseModel):
    job_id: str = Field(description="The Dagster run id")
    partitions_written: int
    files_processed: int
    errors: list[str]
