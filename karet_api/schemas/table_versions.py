"""A Delta table's versions (Karet E4), health and maintenance operations (DRLS shapes)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TableVersion(BaseModel):
    version: int
    timestamp: str = Field(description="Commit time, ISO 8601 UTC")
    operation: str = Field(
        description="run, clean_run, migrate, restore, compact or expire (Karet's commits); "
        "write, delete, merge, … for commits another Delta writer made"
    )
    job_id: str | None = Field(default=None, description="The Dagster run that committed it")
    trigger: str | None = None
    rows_added: int | None = Field(default=None, description="None when the log does not say")
    rows_removed: int | None = None
    files_added: int | None = None
    files_removed: int | None = None
    schema_changed: bool | None = None


class TableVersionList(BaseModel):
    versions: list[TableVersion] = Field(description="Newest first; empty when the table is not written yet")


class TableHealth(BaseModel):
    """DRLS' table health report, of the current version."""

    success: bool = True
    table: str
    snapshot_count: int = Field(description="Readable versions")
    data_file_count: int
    total_size_bytes: int
    avg_file_size_bytes: int
    small_file_count: int = Field(description="Data files under 8 MiB")
    recommendation: str = Field(
        description="`Healthy`, or what to do: compaction when 8 or more small files share partitions with "
        "other small files, expiry when versions older than the retained ones exist"
    )


class CompactOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_size: int | None = Field(
        default=None, ge=1024 * 1024, description="Target file size in bytes (default 100 MiB)"
    )


class CompactRequest(BaseModel):
    strategy: Literal["binpack"] = "binpack"
    options: CompactOptions = Field(default_factory=CompactOptions)


class ExpireRequest(BaseModel):
    retain_last: int | None = Field(
        default=None,
        ge=1,
        description="Versions kept, the current one included; default KARET_TABLE_VERSIONS",
    )
    older_than: datetime | None = Field(
        default=None, description="Only versions committed before this time may be removed (UTC if naive)"
    )


class TableOperation(BaseModel):
    """DRLS' answer to a table operation, plus the Dagster run that executed it."""

    success: bool = True
    operation: Literal["compact", "expire"]
    table: str
    details_json: str = Field(
        description='compact: `{"rewritten_files", "new_files"}`; '
        'expire: `{"expired_versions", "oldest_version", "deleted_files"}`'
    )
    job_id: str = Field(description="The Dagster run that executed it")


class TableRestored(BaseModel):
    success: bool = True
    operation: Literal["restore"] = "restore"
    table: str
    restored_version: int = Field(description="The version whose rows were restored")
    version: int = Field(description="The new current version")
    job_id: str = Field(description="The Dagster run that executed it")
