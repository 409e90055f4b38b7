"""Job records: Karet's shape, built from Dagster runs."""

from typing import Literal

from pydantic import BaseModel, Field

JobStatus = Literal["scheduled", "running", "completed", "failed"]


class FileErrorRecord(BaseModel):
    file: str = Field(description="The raw file's key")
    line: int = Field(description="Its line (the header is line 1)")
    column: str
    value: str | None = Field(description="The value as written in the raw file")
    message: str = Field(description="What the column expects")


class JobProgress(BaseModel):
    """The latest progress a run reported (at most every 500 ms while it runs)."""

    phase: Literal["listing", "parsing", "transforming", "writing", "committing", "checks", "done"]
    table: str | None = Field(description="The table being worked on")
    files_done: int = Field(description="Raw files evaluated (per mapping reading them), of `files_total`")
    files_total: int = Field(description="Raw files planned so far; grows as each table is planned")
    rows_read: int = Field(description="Rows evaluated (after record filters and `where`)")
    rows_written: int
    bytes_done: int
    bytes_total: int
    current_file: str | None
    elapsed_seconds: float
    eta_seconds: float | None = Field(description="Estimate of the time left, from bytes (or files) done")


class JobRecord(BaseModel):
    id: str = Field(description="The Dagster run id")
    pipeline: str
    status: JobStatus
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
    progress: JobProgress | None = Field(
        None, description="The run's latest progress (job detail only; none before its first report)"
    )
    config_version: int | None = Field(
        None, description="The config version the run read (set when it starts; none if unversioned)"
    )
    environment: str | None = Field(
        None, description="`qa` or `uat` for a sandbox run of a config version; none: a production run"
    )


class JobList(BaseModel):
    jobs: list[JobRecord]


class JobCreated(BaseModel):
    job: JobRecord
