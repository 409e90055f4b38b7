"""Models shared by every resource."""

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """The error envelope of every non-2xx answer."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Stable machine-readable code")
    message: str = ""
    details: list[dict[str, str]] | None = None


class Ok(BaseModel):
    ok: bool = True


def error_responses(*pairs: tuple[int, str]) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for the documented error statuses of a route."""
    return {status: {"model": ErrorBody, "description": description} for status, description in pairs}
