"""Models shared by every resource."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The type of a route's OpenAPI ``responses`` (FastAPI's own ``responses=`` parameter).
Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """The error envelope of every non-2xx answer."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Stable machine-readable code")
    message: str = ""
    details: list[dict[str, str]] | None = None


class Ok(BaseModel):
    ok: bool = True


# Every route that touches the store can answer these two (the store's errors, mapped in one place).
STORE_ERRORS = ((502, "bucket_not_found"), (503, "s3_error"))


def error_responses(*pairs: tuple[int, str]) -> Responses:
    """OpenAPI ``responses`` for the documented error statuses of a route."""
    return {status: {"model": ErrorBody, "description": description} for status, description in pairs}
