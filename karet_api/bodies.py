"""``read_capped``: the one reader of request bodies under a size limit.

A body is refused as soon as it is known to be too large: at once when ``Content-Length`` declares more than
the limit, else at the chunk that crosses it, so a client that lies about the length or sends none is
stopped all the same. Each caller keeps its own refusal (status, code and message) by passing a
``TooLarge`` builder; the limits and codes are listed in the README's "Request limits".
"""

from collections.abc import Callable
from typing import IO

from starlette.requests import Request

from karet_defs.errors import KaretError, PayloadTooLarge

TooLarge = Callable[[int, str | None], KaretError]
"""Builds the refusal from the limit and the declared ``Content-Length`` (None: crossed while streaming)."""


def body_over(limit: int, declared: str | None) -> KaretError:
    """``payload_too_large``: "request body over <limit> bytes", declared or sent."""
    return PayloadTooLarge(f"request body over {limit} bytes")


def exceeds_limit(code: str = PayloadTooLarge.code) -> TooLarge:
    """A ``PayloadTooLarge`` with ``code`` that names the declared size when there is one."""

    def build(limit: int, declared: str | None) -> KaretError:
        if declared is None:
            return PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", code=code)
        return PayloadTooLarge(
            f"request body of {declared} bytes exceeds the limit of {limit} bytes", code=code
        )

    return build


async def read_capped(
    request: Request, limit: int, sink: IO[bytes], *, too_large: TooLarge = body_over
) -> None:
    """Copy the request body into ``sink`` and rewind it; past ``limit`` bytes, raise ``too_large``'s."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit, declared)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(limit, None)
        sink.write(chunk)
    sink.seek(0)
