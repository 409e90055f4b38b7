"""Request and response models of the API, named by role."""

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="Stable machine-readable code")
    message: str = ""
    details: list[dict[str, str]] | None = None


class ValidationOk(BaseModel):
    ok: bool = True


class WorkerRunRequest(BaseModel):
    pipeline_prefix: str = Field(description="`pipelines/<slug>/`")
    clean_run: bool = False


class WorkerRunResult(BaseModel):
    job_id: str = Field(description="The Dagster run id")
    partitions_written: int
    files_processed: int
    errors: list[str]
