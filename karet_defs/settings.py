"""Settings read from the environment, in one place: which store (local directory or S3) and its secrets.

An empty ``S3_BUCKET`` selects the embedded default, a local directory (``KARET_DATA_DIR``) with the same key
layout as the bucket. ``KARET_DEPLOYMENT`` picks the Dagster instance (``karet_defs/instance/<name>.yaml``)
and, with it, how the API starts runs. Nothing here is read at import time: call ``Settings()`` (or
``get_settings()``).
"""

import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Dagster's own rule for asset owners (``dagster._core.definitions.utils.is_valid_owner``), checked here so a
# bad value is refused with its setting's name rather than failing every pipeline's definitions.
_OWNER = re.compile(r"team:.+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    data_dir: Path = Field(
        default=Path("karet-data"),
        validation_alias=AliasChoices("KARET_DATA_DIR", "data_dir"),
        description="Root of the embedded local store when no S3 bucket is configured.",
    )
    s3_bucket: str = Field(default="", validation_alias=AliasChoices("S3_BUCKET", "s3_bucket"))
    s3_bucket_lake: str = Field(default="", validation_alias=AliasChoices("S3_BUCKET_LAKE", "s3_bucket_lake"))
    s3_bucket_warehouse: str = Field(
        default="", validation_alias=AliasChoices("S3_BUCKET_WAREHOUSE", "s3_bucket_warehouse")
    )
    s3_endpoint: str = Field(
        default="", validation_alias=AliasChoices("S3_ENDPOINT", "AWS_ENDPOINT_URL", "s3_endpoint")
    )
    aws_region: str = Field(default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "aws_region"))
    aws_access_key_id: str = Field(
        default="", validation_alias=AliasChoices("AWS_ACCESS_KEY_ID", "aws_access_key_id")
    )
    aws_secret_access_key: str = Field(
        default="", validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key")
    )
    s3_force_path_style: bool = Field(
        default=True, validation_alias=AliasChoices("S3_FORCE_PATH_STYLE", "s3_force_path_style")
    )
    worker_token: str = Field(default="", validation_alias=AliasChoices("KARET_WORKER_TOKEN", "worker_token"))
    session_secret: str = Field(
        default="",
        validation_alias=AliasChoices("KARET_SESSION_SECRET", "session_secret"),
        description="HMAC key of session cookies; generated into the data directory on the local store.",
    )
    api_key: str = Field(default="", validation_alias=AliasChoices("KARET_API_KEY", "api_key"))
    webhook_secret: str = Field(
        default="", validation_alias=AliasChoices("KARET_WEBHOOK_SECRET", "webhook_secret")
    )
    dagster_url: str = Field(
        default="",
        validation_alias=AliasChoices("KARET_DAGSTER_URL", "dagster_url"),
        description="Dagster webserver to ask for a code location reload after a change of structure.",
    )
    orphan_after_seconds: int = Field(
        default=600,
        validation_alias=AliasChoices("KARET_ORPHAN_AFTER_SECONDS", "orphan_after_seconds"),
        description="A run still running this long after its last event is shown failed (Karet's 10 min).",
    )
    deployment: Literal["embedded", "production", "distributed"] = Field(
        default="embedded",
        validation_alias=AliasChoices("KARET_DEPLOYMENT", "deployment"),
        description=(
            "Which shipped Dagster instance to use: `embedded` (SQLite; the API executes runs itself), "
            "`production` (Postgres, S3 compute logs) or `distributed` (production + Celery run launcher). "
            "Outside `embedded` the API submits runs to the webserver at `KARET_DAGSTER_URL`, so Dagster's "
            "queue, per-pipeline limit and run launcher apply to them."
        ),
    )

    table_versions: int = Field(
        default=10,
        ge=1,
        validation_alias=AliasChoices("KARET_TABLE_VERSIONS", "table_versions"),
        description="Versions of each table kept by expiry (the daily maintenance and `POST …/expire`).",
    )

    duckdb_memory_limit: str = Field(
        default="512MB",
        pattern=r"(?i)^\s*\d+(\.\d+)?\s*([kmgt]i?b|b)\s*$",
        validation_alias=AliasChoices("DUCKDB_MEMORY_LIMIT", "duckdb_memory_limit"),
        description="Memory of each SQL query's DuckDB (Karet's default); beyond it DuckDB spills or fails.",
    )
    query_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("KARET_QUERY_TIMEOUT_SECONDS", "query_timeout_seconds"),
        description="A SQL query still running after this long is interrupted (`query_timeout`).",
    )
    query_max_rows: int = Field(
        default=10_000,
        ge=1,
        validation_alias=AliasChoices("KARET_QUERY_MAX_ROWS", "query_max_rows"),
        description="Rows a SQL query may answer; more is `result_too_large` (add a LIMIT).",
    )

    lock_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("KARET_LOCK_DIR", "lock_dir"),
        description="Per-pipeline run locks of this host; default inside the data dir or the temp dir.",
    )

    default_owner: str = Field(
        default="team:karet",
        validation_alias=AliasChoices("KARET_DEFAULT_OWNER", "default_owner"),
        description="Owner of every pipeline's assets in Dagster: an email or `team:<name>`.",
    )

    @field_validator("default_owner")
    @classmethod
    def _dagster_owner(cls, value: str) -> str:
        if not _OWNER.fullmatch(value):
            raise ValueError(f"KARET_DEFAULT_OWNER must be an email or `team:<name>`, not {value!r}")
        return value

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_bucket)

    @property
    def queues_runs(self) -> bool:
        """Whether API runs go through Dagster's run queue rather than execute in the API process."""
        return self.deployment != "embedded"

    @property
    def run_lock_dir(self) -> Path:
        """Where this host keeps one lock file per pipeline (never inside the bucket)."""
        if self.lock_dir is not None:
            return self.lock_dir
        if self.uses_s3:
            return Path(tempfile.gettempdir()) / "karet-locks" / self.s3_bucket
        return self.data_dir / ".karet-locks"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
