"""``CappedJsonRoute``: a ceiling on the JSON bodies FastAPI reads whole into memory for a request model.

Routes that take raw bodies (configs, uploads, archives, images, webhook events) stream and cap them
themselves with ``bodies.read_capped``; the routes with a pydantic body model (sign-in, pipeline
create/rename, job start, ...) would otherwise buffer whatever a client sends before validating a field of
it. Here the same reader takes the body first, then hands it to FastAPI, which would buffer it whole anyway.
"""

import io
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive

from karet_api.bodies import read_capped
from karet_api.schemas.common import ErrorBody

MAX_JSON_BODY_MIB = 1
MAX_JSON_BODY_BYTES = MAX_JSON_BODY_MIB * 1024 * 1024


class CappedJsonRoute(APIRoute):
    """An ``APIRoute`` that refuses with 413 a body over ``MAX_JSON_BODY_BYTES`` when it has a body model."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:
            documented = f"payload_too_large: body over {MAX_JSON_BODY_MIB} MiB"
            self.responses.setdefault(413, {"model": ErrorBody, "description": documented})

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def capped(request: Request) -> Response:
            body = io.BytesIO()
            try:
                await read_capped(request, MAX_JSON_BODY_BYTES, body)
            except ClientDisconnect as exc:
                # What FastAPI answers when the body breaks off while it reads it itself.
                raise HTTPException(400, "There was an error parsing the body") from exc
            return await handler(Request(request.scope, _replaying(body.getvalue(), request.receive)))

        return capped


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The capped body as one message, then the client's own messages (a disconnect) as they come."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
