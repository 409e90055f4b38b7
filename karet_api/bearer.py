"""``bearer_token``: the one parser of ``Authorization: Bearer <token>``.

The scheme is matched case-insensitively and the token stripped; any other scheme (Basic, ...) or no header
reads as no token (``""``). What a missing or wrong token answers is each caller's own refusal; the README's
"Request limits" lists them.
"""

from starlette.requests import HTTPConnection


def bearer_token(request: HTTPConnection) -> str:
    """The token of ``Authorization: Bearer``, else ``""``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
