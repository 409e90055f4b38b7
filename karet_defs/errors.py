"""The one error hierarchy of Karet on Dagster.

Every failure a user can see is a ``KaretError`` carrying the spec's ``code`` (the ``error`` field of the
HTTP envelope), a human ``message``, optional ``details`` and optional ``extra`` top-level fields that
Karet's clients read (``pipeline``, ``name``). Library errors (botocore, polars, pydantic) are translated
into these classes at the store and engine boundaries; HTTP status codes are chosen in one table in
``karet_api.errors``, by family:

    KaretError                          500
    ├── BadRequest                      400  (details always a list, as Karet's worker sent it)
    │   ├── InvalidJson                 invalid_json
    │   ├── InvalidPrefix               invalid_prefix
    │   ├── ConfigReadFailed            config_read_failed
    │   ├── ConfigParseFailed           config_parse_failed
    │   ├── ConfigInvalid               config_invalid
    │   ├── InvalidQuery                invalid_query (a saved query that does not plan)
    │   └── QueryError                  query_error (DuckDB refused or failed the SQL)
    │       ├── QueryTableNotFound      query_error (the SQL names a relation the pipeline lacks)
    │       ├── QueryNotAllowed         query_not_allowed (not one SELECT, or a file/network access)
    │       ├── QueryTimeout            query_timeout (interrupted at the time limit)
    │       └── ResultTooLarge          result_too_large (more rows than the row cap)
    ├── Unauthorized                    401  unauthorized, invalid_credentials, wrong_password
    │   ├── InvalidToken                invalid_token (not this instance's token, or not of that kind)
    │   ├── TokenExpired                token_expired
    │   └── TokenRevoked                token_revoked (logged out, account disabled, family revoked)
    │       └── TokenReused             token_reused (a spent refresh token: its whole family is revoked)
    ├── Forbidden                       403  forbidden (the caller's role is below the route's)
    │   ├── NotOwner                    not_owner (only the owner or a lead changes a pipeline's members)
    │   └── LocalhostOnly               localhost_only (setup and status asked from another host)
    ├── NotFound                        404  not_found
    │   ├── ObjectNotFound              not_found (a store key is missing)
    │   ├── PipelineConfigNotFound      pipeline_config_not_found
    │   ├── PipelineNotFound            pipeline_not_found
    │   ├── DashboardNotFound           dashboard_not_found
    │   ├── SavedQueryNotFound          query_not_found
    │   ├── TableVersionNotFound        version_not_found (``engine.delta``)
    │   ├── ConfigVersionNotFound       config_version_not_found (``history``)
    │   ├── ApprovalNotFound            approval_not_found
    │   └── UserNotFound                user_not_found
    ├── Conflict                        409  already_exists, already_initialized
    │   ├── NameTaken                   name_taken (a saved query of that id exists)
    │   ├── LegacyTableError            legacy_table_invalid (``engine.migrate_tables``)
    │   ├── InvalidTransition           invalid_transition (no such move between environments)
    │   ├── ApprovalPending             approval_pending (the version already awaits a decision)
    │   ├── ApprovalDecided             approval_decided (approved or rejected before this request)
    │   ├── ConcurrentChange            concurrent_change (another request moved it first)
    │   ├── InvalidEnvironment          invalid_environment (only QA and UAT versions run in a sandbox)
    │   ├── NoSandboxRun                no_sandbox_run (the version has no sandbox tables to compare yet)
    │   └── InstanceNotEmpty            instance_not_empty (an instance import needs no pipelines or runs)
    ├── PreconditionFailed              412  etag_mismatch
    │   └── StaleConfig                 stale_config (``X-Karet-Config-Version`` is not the current one)
    ├── PayloadTooLarge                 413  payload_too_large, zip_too_large, zip_expands_too_large
    ├── Unprocessable                   422
    │   ├── ConfigSchemaError           schema (the body is not a pipeline config)
    │   ├── ValidationFailed            <first error kind>, details = every error
    │   ├── InvalidSlug                 invalid_slug
    │   ├── MissingSql                  missing_sql
    │   ├── QueryTooLong                query_too_long
    │   ├── MissingFields               missing_fields
    │   ├── ExpressionError             expression_error
    │   ├── InvalidDashboard            invalid_dashboard (details: ``{kind, message, path}`` per problem)
    │   ├── InvalidFilterValue          invalid_filter (a dashboard filter value of the wrong shape)
    │   ├── InvalidUser                 invalid_user (a user name outside the rule, or reserved)
    │   ├── UnknownUser                 unknown_user (a pipeline member who is no user)
    │   ├── AdminIsPermanent            admin_is_permanent (the admin's role and access never change)
    │   ├── ConfirmMismatch             confirm_mismatch (a reset not confirmed by the instance's name)
    │   └── InvalidArchive              invalid_archive (an instance archive without a readable manifest)
    ├── RateLimited                     429  rate_limited, server_busy (with ``retry_after`` seconds)
    │   └── QueryConcurrencyExceeded    rate_limited (every query slot of the process is taken)
    ├── PreviewFailed                   500  preview_failed (never answered: recorded on the run)
    └── StoreError                      503  s3_error
        └── BucketNotFound              502  bucket_not_found
"""

from typing import Any


class KaretError(Exception):
    """Base of every user-visible failure: a stable ``code``, a message, optional details and extra fields."""

    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message, **self.extra}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(KaretError):
    """Request errors; Karet's worker always sent them with an empty ``details`` list."""

    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=[] if details is None else details, extra=extra)


class InvalidJson(BadRequest):
    code = "invalid_json"


class InvalidPrefix(BadRequest):
    code = "invalid_prefix"


class InvalidQuery(BadRequest):
    """A query to be saved does not plan (``LIMIT 0``) over the pipeline's tables."""

    code = "invalid_query"


class QueryError(BadRequest):
    """DuckDB refused or failed a query: a syntax, binder or conversion error, or a resource limit."""

    code = "query_error"


class QueryTableNotFound(QueryError):
    """The SQL names a table or schema the pipeline does not have (Karet's code stays ``query_error``)."""


class QueryNotAllowed(QueryError):
    """Not exactly one read-only SELECT, or an attempt to reach files, extensions or settings."""

    code = "query_not_allowed"


class QueryTimeout(QueryError):
    code = "query_timeout"


class ResultTooLarge(QueryError):
    code = "result_too_large"


class ConfigReadFailed(BadRequest):
    code = "config_read_failed"


class ConfigParseFailed(BadRequest):
    code = "config_parse_failed"


class ConfigInvalid(BadRequest):
    code = "config_invalid"


class Unauthorized(KaretError):
    code = "unauthorized"


class Forbidden(KaretError):
    """The caller is signed in but its role is below what the route needs."""

    code = "forbidden"


class InvalidToken(Unauthorized):
    code = "invalid_token"


class TokenExpired(Unauthorized):
    code = "token_expired"


class TokenRevoked(Unauthorized):
    code = "token_revoked"


class TokenReused(TokenRevoked):
    """A spent refresh token came back: stolen and replayed, or raced; its whole family is revoked."""

    code = "token_reused"


class NotOwner(Forbidden):
    code = "not_owner"


class LocalhostOnly(Forbidden):
    code = "localhost_only"


class NotFound(KaretError):
    code = "not_found"


class UserNotFound(NotFound):
    code = "user_not_found"


class ObjectNotFound(NotFound):
    code = "not_found"


class PipelineConfigNotFound(NotFound):
    code = "pipeline_config_not_found"


class PipelineNotFound(NotFound):
    code = "pipeline_not_found"


class DashboardNotFound(NotFound):
    code = "dashboard_not_found"


class SavedQueryNotFound(NotFound):
    code = "query_not_found"


class ConfigVersionNotFound(NotFound):
    code = "config_version_not_found"


class ApprovalNotFound(NotFound):
    code = "approval_not_found"


class Conflict(KaretError):
    code = "already_exists"


class InstanceNotEmpty(Conflict):
    code = "instance_not_empty"


class NameTaken(Conflict):
    code = "name_taken"


class InvalidTransition(Conflict):
    """The version's environment has no such move (promote from production, demote from QA, ...)."""

    code = "invalid_transition"


class ApprovalPending(Conflict):
    code = "approval_pending"


class ApprovalDecided(Conflict):
    code = "approval_decided"


class ConcurrentChange(Conflict):
    """A concurrent request changed the same version or request first; this one changed nothing."""

    code = "concurrent_change"


class InvalidEnvironment(Conflict):
    """The version is not in an environment that runs in a sandbox (QA or UAT)."""

    code = "invalid_environment"


class NoSandboxRun(Conflict):
    """No sandbox run of the version has committed tables yet, so there is nothing to compare."""

    code = "no_sandbox_run"


class PreconditionFailed(KaretError):
    code = "etag_mismatch"


class StaleConfig(PreconditionFailed):
    code = "stale_config"


class PayloadTooLarge(KaretError):
    code = "payload_too_large"


class Unprocessable(KaretError):
    code = "unprocessable"


class ConfigSchemaError(Unprocessable):
    """The document is not a pipeline config at all (bad JSON, wrong types, unknown expression kind).

    Without details of its own it still carries one at ``/``, so clients always read the same
    ``{kind, message, path}`` list.
    """

    code = "schema"

    def __init__(self, message: str, *, details: list[Any] | None = None) -> None:
        super().__init__(
            message,
            details=details if details is not None else [{"kind": "schema", "message": message, "path": "/"}],
        )


class ValidationFailed(Unprocessable):
    """The config parsed but breaks validation rules; ``details`` lists every error."""

    code = "validation_failed"


class InvalidSlug(Unprocessable):
    code = "invalid_slug"


class ExpressionError(Unprocessable):
    code = "expression_error"


class UnsupportedFormatVersion(Unprocessable):
    code = "unsupported_format_version"


class MissingSql(Unprocessable):
    code = "missing_sql"


class QueryTooLong(Unprocessable):
    code = "query_too_long"


class MissingFields(Unprocessable):
    code = "missing_fields"


class InvalidDashboard(Unprocessable):
    """A stored dashboard that does not read as one; ``details`` holds ``{kind, message, path}`` each."""

    code = "invalid_dashboard"


class InvalidFilterValue(Unprocessable):
    code = "invalid_filter"


class InvalidUser(Unprocessable):
    code = "invalid_user"


class UnknownUser(Unprocessable):
    code = "unknown_user"


class AdminIsPermanent(Unprocessable):
    code = "admin_is_permanent"


class ConfirmMismatch(Unprocessable):
    code = "confirm_mismatch"


class InvalidArchive(Unprocessable):
    code = "invalid_archive"


class RateLimited(KaretError):
    """Too many attempts; ``retry_after`` seconds go into the ``Retry-After`` header."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class QueryConcurrencyExceeded(RateLimited):
    """Every query slot of the process is taken (Karet's ``rate_limited``, KalamDB's RATE_LIMIT_EXCEEDED)."""


class PreviewFailed(KaretError):
    """A dashboard could not be rendered to the preview PNG; a run records it and goes on."""

    code = "preview_failed"


class StoreError(KaretError):
    code = "s3_error"


class BucketNotFound(StoreError):
    code = "bucket_not_found"
