"""Who may call ``/api/*``: a valid session cookie or the configured API key."""

import hmac

from fastapi import Request

from karet_defs.settings import Settings


def presented_api_key(request: Request) -> str:
    """The key in ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    header = request.headers.get("x-api-key")
    if header:
        return header
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_key_matches(request: Request, settings: Settings) -> bool:
    expected = settings.api_key
    presented = presented_api_key(request)
    return bool(expected and presented) and hmac.compare_digest(presented.encode(), expected.encode())


def is_authenticated(request: Request, settings: Settings) -> bool:
    return api_key_matches(request, settings)
