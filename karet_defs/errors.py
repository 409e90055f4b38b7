"""The one error hierarchy of Karet on Dagster.

Every failure a user can see is a ``KaretError`` carrying the spec's ``code`` (the ``error`` field of the
HTTP envelope), a human ``message`` and optional ``details``. Library errors (botocore, polars, pydantic)
are translated into these classes at the store and engine boundaries; HTTP status codes are chosen in one
table in ``karet_api.errors``.

    KaretError
    ├── BadRequest                     400 family
    │   ├── InvalidJson                invalid_json
    │   ├── InvalidPrefix              invalid_prefix
    │   ├── ConfigReadFailed           config_read_failed
    │   ├── ConfigParseFailed          config_parse_failed
    │   └── ConfigInvalid              config_invalid
    ├── Unprocessable                  422 family
    │   ├── ConfigSchemaError          schema        (body is not a pipeline config)
    │   ├── ValidationFailed           <first error kind>, details = every error
    │   ├── InvalidSlug                invalid_slug
    │   └── ExpressionError            expression_error (an expression cannot be compiled)
    ├── Unauthorized                   unauthorized
    ├── NotFound                       not_found
    │   ├── ObjectNotFound             not_found     (a store key is missing)
    │   └── PipelineConfigNotFound     pipeline_config_not_found
    ├── Conflict                       already_exists
    ├── PreconditionFailed             precondition_failed
    └── StoreError                     s3_error
        └── BucketNotFound             bucket_not_found
"""

from typing import Any


class KaretError(Exception):
    """Base of every user-visible failure: a stable ``code``, a message and optional details."""

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(KaretError):
    """Run-aborting request errors; Karet's worker always sent them with an empty ``details`` list."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: list[Any] | None = None) -> None:
        super().__init__(message, code=code, details=[] if details is None else details)


class InvalidJson(BadRequest):
    code = "invalid_json"


class InvalidPrefix(BadRequest):
    code = "invalid_prefix"


class ConfigReadFailed(BadRequest):
    code = "config_read_failed"


class ConfigParseFailed(BadRequest):
    code = "config_parse_failed"


class ConfigInvalid(BadRequest):
    code = "config_invalid"


class Unprocessable(KaretError):
    code = "unprocessable"


class ConfigSchemaError(Unprocessable):
    """The document is not a pipeline config at all (bad JSON, wrong types, unknown expression kind)."""

    code = "schema"


class ValidationFailed(Unprocessable):
    """The config parsed but breaks validation rules; ``details`` lists every error."""

    code = "validation_failed"


class InvalidSlug(Unprocessable):
    code = "invalid_slug"


class ExpressionError(Unprocessable):
    code = "expression_error"


class Unauthorized(KaretError):
    code = "unauthorized"


class NotFound(KaretError):
    code = "not_found"


class ObjectNotFound(NotFound):
    code = "not_found"


class PipelineConfigNotFound(NotFound):
    code = "pipeline_config_not_found"


class Conflict(KaretError):
    code = "already_exists"


class PreconditionFailed(KaretError):
    code = "precondition_failed"


class StoreError(KaretError):
    code = "s3_error"


class BucketNotFound(StoreError):
    code = "bucket_not_found"
