"""Reading a candidate ``pipeline.json`` body, as the validate endpoints and ``PUT config`` do."""

import io

from starlette.requests import Request

from karet_api.services.transfer import read_body
from karet_defs.config.validate import MAX_CONFIG_BYTES


async def read_config_body(request: Request) -> bytes:
    """A candidate ``pipeline.json`` from the request body; over 5 MiB, ``payload_too_large`` (413)."""
    body = io.BytesIO()
    await read_body(request, body, limit=MAX_CONFIG_BYTES, code="payload_too_large")
    return body.getvalue()
