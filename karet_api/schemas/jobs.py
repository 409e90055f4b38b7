"""Job records: Karet's shape, built from Dagster runs."""

from typing import Literal

from pydantic import BaseModel, Field


class JobRecord(BaseModel):
    id: str = Field(description="The Dagster run id")
    pipeline: str
    status: Literal["scheduled", "running", "completed", "failed"]
    startedAt: str
    completedAt: str | None = None
    error: str | None = None
    errors: list[str] = Field(default_factory=list)
    partitions_written: int | None = None
    files_processed: int | None = None
    trigger: str | None = None


class JobList(BaseModel):
    jobs: list[JobRecord]


class JobCreated(BaseModel):
    job: JobRecord
