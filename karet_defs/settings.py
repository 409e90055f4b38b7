"""Settings read from the environment, in one place: which store (local directory or S3) and its secrets.

An empty ``S3_BUCKET`` selects the embedded default, a local directory (``KARET_DATA_DIR``) with the same key
layout as the bucket. ``KARET_DEPLOYMENT`` picks the Dagster instance (``karet_defs/instance/<name>.yaml``)
and, with it, how the API starts runs; ``require_instance_env`` and ``require_dagster_url`` refuse the
deployments that lack what their processes need, naming the variables. Nothing here is read at import time:
call ``Settings()`` (or ``get_settings()``).
"""

import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from limits import parse_many
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Dagster's own rule for asset owners (``dagster._core.definitions.utils.is_valid_owner``), checked here so a
# bad value is refused with its setting's name rather than failing every pipeline's definitions.
_OWNER = re.compile(r"team:.+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")

Deployment = Literal["embedded", "production", "distributed"]
DEPLOYMENTS: tuple[Deployment, ...] = get_args(Deployment)
# The variables each shipped instance reads when a Dagster process loads it, and the fields holding them.
INSTANCE_ENV: dict[Deployment, dict[str, str]] = {
    "embedded": {},
    "production": {"KARET_POSTGRES_URL": "postgres_url", "KARET_COMPUTE_LOGS_BUCKET": "compute_logs_bucket"},
    "distributed": {
        "KARET_POSTGRES_URL": "postgres_url",
        "KARET_COMPUTE_LOGS_BUCKET": "compute_logs_bucket",
        "KARET_CELERY_BROKER_URL": "celery_broker_url",
        "KARET_CELERY_BACKEND_URL": "celery_backend_url",
    },
}


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
    deployment: Deployment = Field(
        default="embedded",
        validation_alias=AliasChoices("KARET_DEPLOYMENT", "deployment"),
        description=(
            "Which shipped Dagster instance to use: `embedded` (SQLite; the API executes runs itself), "
            "`production` (Postgres, S3 compute logs) or `distributed` (production + Celery run launcher). "
            "Outside `embedded` the API submits runs to the webserver at `KARET_DAGSTER_URL`, so Dagster's "
            "queue, per-pipeline limit and run launcher apply to them."
        ),
    )
    dagster_home: Path = Field(
        default=Path(".dagster-home"),
        validation_alias=AliasChoices("DAGSTER_HOME", "dagster_home"),
        description="The Dagster instance's directory (`dagster.yaml`, SQLite storage), as Dagster reads it.",
    )
    postgres_url: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("KARET_POSTGRES_URL", "postgres_url"),
        description="Run, event and schedule storage of the `production` and `distributed` instances.",
    )
    compute_logs_bucket: str = Field(
        default="",
        validation_alias=AliasChoices("KARET_COMPUTE_LOGS_BUCKET", "compute_logs_bucket"),
        description="S3 bucket of the run logs of the `production` and `distributed` instances.",
    )
    celery_broker_url: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("KARET_CELERY_BROKER_URL", "celery_broker_url"),
        description="Queue of the `distributed` instance's Celery run launcher.",
    )
    celery_backend_url: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("KARET_CELERY_BACKEND_URL", "celery_backend_url"),
        description="Result store of the `distributed` instance's Celery run launcher (shared, not `rpc://`).",
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
    query_concurrency: int = Field(
        default=4,
        ge=1,
        validation_alias=AliasChoices("KARET_QUERY_CONCURRENCY", "query_concurrency"),
        description=(
            "SQL queries (query page, `/v1/api/sql`, dashboard data) the API runs at once; each has its own "
            "DuckDB with `DUCKDB_MEMORY_LIMIT`, so this times that bounds their memory. Beyond it a request "
            "waits `KARET_QUERY_WAIT_SECONDS`, then gets 429 with Retry-After."
        ),
    )
    query_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        validation_alias=AliasChoices("KARET_QUERY_WAIT_SECONDS", "query_wait_seconds"),
        description="How long a query waits for a free slot before it is refused (429).",
    )

    allow_remote_setup: bool = Field(
        default=False,
        validation_alias=AliasChoices("KARET_ALLOW_REMOTE_SETUP", "allow_remote_setup"),
        description="Answer `/v1/api/auth/setup` and `/status` from other hosts too (KalamDB's rule).",
    )
    instance_name: str = Field(
        default="karet",
        validation_alias=AliasChoices("KARET_INSTANCE_NAME", "instance_name"),
        description="The name `POST /api/admin/reset` must be sent in `confirm`.",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        validation_alias=AliasChoices("KARET_RATE_LIMIT_STORAGE", "rate_limit_storage"),
        description="Where rate-limit windows are counted: `memory://` (one host) or `redis://host:6379`.",
    )
    rate_limit_login: str = Field(
        default="5 per 15 seconds; 20 per 10 minutes",
        validation_alias=AliasChoices("KARET_RATE_LIMIT_LOGIN", "rate_limit_login"),
        description="Login attempts per client address (`limits` notation); a success resets them.",
    )
    rate_limit_login_user: str = Field(
        default="10 per minute; 60 per hour",
        validation_alias=AliasChoices("KARET_RATE_LIMIT_LOGIN_USER", "rate_limit_login_user"),
        description="Login attempts per user name from all addresses together (looser, against spraying).",
    )
    rate_limit_refresh: str = Field(
        default="10 per minute",
        validation_alias=AliasChoices("KARET_RATE_LIMIT_REFRESH", "rate_limit_refresh"),
        description="Token refreshes per client address.",
    )
    rate_limit_sql: str = Field(
        default="120 per minute",
        validation_alias=AliasChoices("KARET_RATE_LIMIT_SQL", "rate_limit_sql"),
        description="SQL queries per user and per client address (the API key is exempt).",
    )
    rate_limit_writes: str = Field(
        default="600 per minute",
        validation_alias=AliasChoices("KARET_RATE_LIMIT_WRITES", "rate_limit_writes"),
        description="Writes (POST, PUT, PATCH, DELETE) per user and per client address (not the API key).",
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

    @field_validator("dagster_home", mode="before")
    @classmethod
    def _default_dagster_home(cls, value: object) -> object:
        # An empty DAGSTER_HOME means unset, as Dagster itself reads it, not the working directory.
        return value or Path(".dagster-home")

    @field_validator(
        "rate_limit_login",
        "rate_limit_login_user",
        "rate_limit_refresh",
        "rate_limit_sql",
        "rate_limit_writes",
    )
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        parse_many(value)  # a ValueError names the bad notation at startup, not on the first request
        return value

    def require_instance_env(self) -> None:
        """Refuse a deployment whose shipped Dagster instance reads variables that are not set.

        A method rather than a validator: printing an instance, or one edited by hand, needs none of them.
        """
        missing = [
            name for name, field in INSTANCE_ENV[self.deployment].items() if not _value(getattr(self, field))
        ]
        if missing:
            raise ValueError(
                f"KARET_DEPLOYMENT={self.deployment} needs these environment variables: {', '.join(missing)}"
            )

    def require_dagster_url(self) -> None:
        """Refuse to serve the API of a deployment that queues runs without the webserver taking them."""
        if self.queues_runs and not self.dagster_url:
            raise ValueError(
                f"KARET_DEPLOYMENT={self.deployment} submits runs to Dagster's queue: set KARET_DAGSTER_URL "
                "to the Dagster webserver (e.g. http://dagster-webserver:80)"
            )

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


def _value(setting: str | SecretStr) -> str:
    return setting.get_secret_value() if isinstance(setting, SecretStr) else setting


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
