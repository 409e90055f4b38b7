"""``CappedJsonRoute``: a ceiling on the JSON bodies FastAPI reads whole into memory for a request model.

Routes that take raw bodies (configs, uploads, archives, images, webhook events) stream and cap them
themselves; the routes with a pydantic body model (sign-in, pipeline create/rename, job start, ...) would
otherwise buffer whatever a client sends before validating a field of it.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from karet_api.schemas.common import ErrorBody
from karet_defs.errors import PayloadTooLarge

MAX_JSON_BODY_MIB = 1
MAX_JSON_BODY_BYTES = MAX_JSON_BODY_MIB * 1024 * 1024
_TOO_LARGE = f"request body over {MAX_JSON_BODY_BYTES} bytes"


class CappedJsonRoute(APIRoute):
    """An ``APIRoute`` that refuses with 413 a body over ``MAX_JSON_BODY_BYTES`` when it has a body model."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:
            documented = f"payload_too_large: body over {MAX_JSON_BODY_MIB} MiB"
            self.responses.setdefault(413, {"model": ErrorBody, "description": documented})

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def capped(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_JSON_BODY_BYTES:
                raise PayloadTooLarge(_TOO_LARGE)
            return await handler(Request(request.scope, _counting(request.receive)))

        return capped


def _counting(receive: Callable[[], Awaitable[Message]]) -> Callable[[], Awaitable[Message]]:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > MAX_JSON_BODY_BYTES:
            # An HTTPException, because FastAPI turns any other error raised while it reads the body into a
            # generic 400; the error handlers give it the Karet envelope (`payload_too_large`).
            raise HTTPException(413, _TOO_LARGE)
        return message

    return counted
