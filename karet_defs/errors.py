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
    ├── NotFound                        404  not_found
    │   ├── ObjectNotFound              not_found (a store key is missing)
    │   ├── PipelineConfigNotFound      pipeline_config_not_found
    │   ├── PipelineNotFound            pipeline_not_found
    │   ├── DashboardNotFound           dashboard_not_found
    │   ├── SavedQueryNotFound          query_not_found
    │   └── TableVersionNotFound        version_not_found (``engine.delta``)
    ├── Conflict                        409  already_exists, already_initialized
    │   ├── NameTaken                   name_taken (a saved query of that id exists)
    │   └── LegacyTableError            legacy_table_invalid (``engine.migrate_tables``)
    ├── PreconditionFailed              412  etag_mismatch
    ├── PayloadTooLarge                 413  payload_too_large, zip_too_large, zip_expands_too_large
    ├── Unprocessable                   422
    │   ├── ConfigSchemaError           schema (the body is not a pipeline config)
    │   ├── ValidationFailed            <first error kind>, details = every error
    │   ├── InvalidSlug                 invalid_slug
    │   ├── MissingSql                  missing_sql
    │   ├── QueryTooLong                query_too_long
    │   ├── MissingFields               missing_fields
    │   └── ExpressionError             expression_error
    ├── RateLimited                     429  rate_limited, server_busy (with ``retry_after`` seconds)
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


class NotFound(KaretError):
    code = "not_found"


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


class Conflict(KaretError):
    code = "already_exists"


class NameTaken(Conflict):
    code = "name_taken"


class PreconditionFailed(KaretError):
    code = "etag_mismatch"


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


class MissingSql(Unprocessable):
    code = "missing_sql"


class QueryTooLong(Unprocessable):
    code = "query_too_long"


class MissingFields(Unprocessable):
    code = "missing_fields"


class RateLimited(KaretError):
    """Too many attempts; ``retry_after`` seconds go into the ``Retry-After`` header."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StoreError(KaretError):
    code = "s3_error"


class BucketNotFound(StoreError):
    code = "bucket_not_found"
