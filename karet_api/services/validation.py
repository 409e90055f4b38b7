"""Config validation as both the worker's ``/config/validate`` and ``/api/p/<slug>/validate`` answer it."""

import io

from starlette.requests import Request

from karet_api.services.transfer import read_body
from karet_defs.config.validate import MAX_CONFIG_BYTES, load_pipeline


async def read_config_body(request: Request) -> bytes:
    """A candidate ``pipeline.json`` from the request body; over 5 MiB, ``payload_too_large`` (413)."""
    body = io.BytesIO()
    await read_body(request, body, limit=MAX_CONFIG_BYTES, code="payload_too_large")
    return body.getvalue()


def validate_config(raw: bytes) -> None:
    """Parse and validate a candidate ``pipeline.json``; raise with every error in ``details``."""
    load_pipeline(raw)
