"""Karet's cookie headers, and its admin session cookie ``karet_session``.

The session cookie is an itsdangerous signed, timestamped token valid for 7 days and kept nowhere on the
server, so rotating the session secret revokes every session. Every cookie Karet sets (this one and the
token cookies of ``services.accounts.sessions``) is written by ``cookie_header``.
"""

from itsdangerous import BadData

from karet_api.services.auth.admin import ADMIN_USER
from karet_api.services.auth.secret import SigningKeys

SESSION_COOKIE = "karet_session"
SESSION_TTL_SECONDS = 7 * 24 * 60 * 60


def cookie_header(name: str, value: str, max_age: int, *, path: str = "/", secure: bool) -> str:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, and Secure when the request came over HTTPS."""
    # Written by hand to match Karet's header byte for byte (SimpleCookie would quote the empty value).
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def session_cookie(keys: SigningKeys, *, secure: bool) -> str:
    """A fresh 7-day session cookie."""
    token = keys.session_signer().dumps({"sub": ADMIN_USER})
    return cookie_header(SESSION_COOKIE, token, SESSION_TTL_SECONDS, secure=secure)


def expired_session_cookie(*, secure: bool) -> str:
    """The cookie that makes the browser drop its session."""
    return cookie_header(SESSION_COOKIE, "", 0, secure=secure)


def is_valid_session(keys: SigningKeys, token: str | None) -> bool:
    """Whether ``token`` is an untampered, unexpired session cookie."""
    signer = keys.session_signer()  # first: a missing secret is server_misconfigured, even without a cookie
    if not token:
        return False
    try:
        payload = signer.loads(token, max_age=SESSION_TTL_SECONDS)
    except BadData:  # bad signature, expired, future-dated or malformed: all simply "not logged in"
        return False
    return isinstance(payload, dict) and payload.get("sub") == ADMIN_USER
