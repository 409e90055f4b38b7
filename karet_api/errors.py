"""The one place where ``KaretError`` becomes an HTTP response: ``{"error", "message", "details"?}``.

Statuses come from a table keyed by class and resolved along the MRO, so a new subclass inherits its family's
status. Framework errors (unknown route, wrong method, bad request body) and unexpected exceptions answer in
the same envelope; no stack trace reaches a client. The KalamDB-style routes under ``/v1/api`` answer in
KalamDB's envelope instead (``{"status": "error", "results": [], "took", "error": {"code", "message",
"details"}}``), from a second table of the same kind (``kalam_error_response``).
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from karet_defs.errors import (
    BadRequest,
    BucketNotFound,
    Conflict,
    Forbidden,
    KaretError,
    NotFound,
    PayloadTooLarge,
    PipelineNotFound,
    PreconditionFailed,
    QueryNotAllowed,
    QueryTableNotFound,
    QueryTimeout,
    RateLimited,
    ResultTooLarge,
    StoreError,
    Unauthorized,
    Unprocessable,
)

_log = logging.getLogger("karet.api")

STATUS_BY_ERROR: dict[type[KaretError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    PayloadTooLarge: 413,
    Unprocessable: 422,
    RateLimited: 429,
    BucketNotFound: 502,
    StoreError: 503,
}

_HTTP_CODES = {
    400: "invalid_json",  # FastAPI's "error parsing the body": bytes that are not even text
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}
_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_FRAMEWORK_SCHEMAS = ("HTTPValidationError", "ValidationError")


# KalamDB's codes (seed 002): a namespace is a pipeline, so a missing pipeline is a missing table there.
KALAM_BY_ERROR: dict[type[KaretError], tuple[int, str]] = {
    QueryNotAllowed: (403, "PERMISSION_DENIED"),
    QueryTableNotFound: (404, "TABLE_NOT_FOUND"),
    PipelineNotFound: (404, "TABLE_NOT_FOUND"),
    NotFound: (404, "NOT_FOUND"),
    QueryTimeout: (400, "QUERY_TIMEOUT"),
    ResultTooLarge: (400, "RESULT_TOO_LARGE"),
    BadRequest: (400, "INVALID_SQL"),
    Unprocessable: (400, "INVALID_SQL"),
    Unauthorized: (401, "UNAUTHORIZED"),
    Forbidden: (403, "PERMISSION_DENIED"),
    PayloadTooLarge: (413, "PAYLOAD_TOO_LARGE"),
    RateLimited: (429, "RATE_LIMIT_EXCEEDED"),
    StoreError: (503, "CLUSTER_UNAVAILABLE"),
}
_KALAM_INTERNAL = (500, "INTERNAL_ERROR")
# The topic routes answer in the same envelope; their refusals are about requests, not SQL.
KALAM_TOPIC_BY_ERROR: dict[type[KaretError], tuple[int, str]] = {
    NotFound: (404, "TOPIC_NOT_FOUND"),
    BadRequest: (400, "BAD_REQUEST"),
    Unprocessable: (400, "BAD_REQUEST"),
}


def status_for(error: KaretError) -> int:
    """The HTTP status of an error: the entry of the nearest class in its MRO, else 500."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_response(error: KaretError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(error.to_dict(), status_code=status_for(error), headers=headers)


def kalam_error_response(
    error: KaretError, took_ms: float, codes: dict[type[KaretError], tuple[int, str]] | None = None
) -> JSONResponse:
    """``error`` in KalamDB's envelope (``codes`` before the SQL table); ``details`` keeps Karet's own code
    and details."""
    table = {**KALAM_BY_ERROR, **(codes or {})}
    status, code = next((table[cls] for cls in type(error).__mro__ if cls in table), _KALAM_INTERNAL)
    details: dict[str, Any] = {"karet_error": error.code, **error.extra}
    if error.details:
        details["details"] = error.details
    body = {
        "status": "error",
        "results": [],
        "took": round(took_ms, 3),
        "error": {"code": code, "message": error.message, "details": details},
    }
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else {}
    return JSONResponse(body, status_code=status, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    """Install the handlers that give every failure the Karet envelope, and document what they answer."""
    _document_framework_errors(app)

    @app.exception_handler(KaretError)
    async def _karet(_: Request, exc: KaretError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()]
        return JSONResponse(
            {
                "error": "invalid_request",
                "message": "; ".join(p["message"] for p in problems[:5]),
                "details": problems,
            },
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"error": "internal_error", "message": "internal server error"}, status_code=500)


# pydantic's words for a bad boolean do not say what it accepts.
_BOOLEAN_WORDS = "true, false, 1, 0, yes, no, on, off"


def _problem(error: Any) -> dict[str, str]:
    """One request validation error as a ``{kind, message, path}`` detail naming the parameter."""
    where = [str(part) for part in error.get("loc", ()) if part != "body"]
    name = ".".join(where[1:] if where[:1] in (["query"], ["path"], ["header"]) else where) or "body"
    reason = str(error.get("msg"))
    if error.get("type") == "bool_parsing":
        reason = f"must be a boolean ({_BOOLEAN_WORDS}), not {error.get('input')!r}"
    return {"kind": "invalid_request", "message": f"{name}: {reason}", "path": "/" + "/".join(where)}


def _document_framework_errors(app: FastAPI) -> None:
    """Make the OpenAPI document describe the envelope the framework handlers below really send.

    FastAPI documents request validation errors as its own ``HTTPValidationError`` (``{"detail": [...]}``),
    which ``_invalid`` replaces with ``invalid_request``; and it leaves out the 400 it raises for a model
    body that is not even text.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()  # cached by FastAPI as ``app.openapi_schema``; edited in place once
        for item in document.get("paths", {}).values():
            for operation in item.values():
                _envelope_framework_errors(operation)
        for name in _FRAMEWORK_SCHEMAS:
            document.get("components", {}).get("schemas", {}).pop(name, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _envelope_framework_errors(operation: dict[str, Any]) -> None:
    responses = operation.get("responses", {})
    invalid = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if invalid.get("$ref", "").endswith("/HTTPValidationError"):
        responses["422"] = {
            "description": "invalid_request: a parameter or the body does not match",
            "content": _ERROR_BODY,
        }
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    # A model FastAPI parses itself, maybe optional; raw-body routes read and answer on their own.
    if any("$ref" in schema for schema in [body, *body.get("anyOf", [])]):
        not_text = {"description": "invalid_json: the body is not text", "content": _ERROR_BODY}
        responses.setdefault("400", not_text)
