"""Job records: Karet's shape, built from Dagster runs."""

from typing import Literal

from pydantic import BaseModel, Field


class FileErrorRecord(BaseModel):
    file: str = Field(description="The raw file's key")
    line: int = Field(description="Its line (the header is line 1)")
    column: str
    value: str | None = Field(description="The value as written in the raw file")
    message: str = Field(description="What the column expects")


class JobRecord(BaseModel):
    id: str = Field(description="The Dagster run id")
    pipeline: str
    status: Literal["scheduled", "running", "completed", "failed"]
    startedAt: str
    completedAt: str | None = None
    error: str | None = None
    errors: list[str] = Field(default_factory=list)
    file_errors: list[FileErrorRecord] = Field(
        default_factory=list,
        description="Rows of raw files held back by this run (quarantined): the first 20 of the run",
    )
    partitions_written: int | None = None
    files_processed: int | None = None
    trigger: str | None = None


class JobList(BaseModel):
    jobs: list[JobRecord]


class JobCreated(BaseModel):
    job: JobRecord
