"""Reading a candidate ``pipeline.json`` body, as the validate endpoints and ``PUT config`` do."""

import io

from starlette.requests import Request

from karet_api.bodies import exceeds_limit, read_capped
from karet_defs.config.validate import MAX_CONFIG_BYTES


async def read_config_body(request: Request) -> bytes:
    """A candidate ``pipeline.json`` from the request body; over 5 MiB, ``payload_too_large`` (413)."""
    body = io.BytesIO()
    await read_capped(request, MAX_CONFIG_BYTES, body, too_large=exceeds_limit())
    return body.getvalue()
