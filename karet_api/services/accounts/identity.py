"""Who is calling: the API key's service identity, a user's access token, or Karet's admin session.

Tried in this order: ``KARET_API_KEY`` (``X-API-Key`` or ``Authorization: Bearer``; the service ``api``,
an admin), an access token in ``Authorization: Bearer`` or the ``karet_token`` cookie, then Karet's
``karet_session`` cookie (the admin). A token's user is read from the store on every request, so a role
change or a disabled account takes effect at once rather than when the token expires.
"""

import hmac
from dataclasses import dataclass

from fastapi import Request

from karet_api.bearer import bearer_token
from karet_api.services.accounts import tokens
from karet_api.services.accounts.users import Role, load_user
from karet_api.services.auth import cookies
from karet_api.services.auth.admin import ADMIN_USER
from karet_api.services.auth.secret import SigningKeys
from karet_api.services.auth.state import auth_of
from karet_defs.errors import Unauthorized
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectStore

ACCESS_COOKIE = "karet_token"
REFRESH_COOKIE = "karet_refresh"
SERVICE_USER = "api"


@dataclass(frozen=True)
class Actor:
    name: str
    role: Role
    service: bool = False
    token: tokens.Claims | None = None  # the access token that identified the caller, if one did
    token_from_cookie: bool = False


def presented_api_key(request: Request) -> str:
    """The key in ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    header = request.headers.get("x-api-key")
    if header:
        return header
    return bearer_token(request)


def presented_token(request: Request) -> str:
    """The token a request presents with an ``Authorization`` header; empty without one."""
    return presented_api_key(request) if "authorization" in request.headers else ""


def api_key_matches(request: Request, settings: Settings) -> bool:
    """Whether the request presents the configured API key (compared in constant time)."""
    expected = settings.api_key
    presented = presented_api_key(request)
    return bool(expected and presented) and hmac.compare_digest(presented.encode(), expected.encode())


def resolve(request: Request, settings: Settings, store: ObjectStore) -> Actor | None:
    """The caller, or None when nothing valid identifies one."""
    if api_key_matches(request, settings):
        return Actor(SERVICE_USER, Role.admin, service=True)
    keys = auth_of(request).keys
    presented = ((presented_token(request), False), (request.cookies.get(ACCESS_COOKIE, ""), True))
    for token, from_cookie in presented:
        if token:
            actor = _token_actor(keys, store, token, from_cookie)
            if actor is not None:
                return actor
    if cookies.is_valid_session(keys, request.cookies.get(cookies.SESSION_COOKIE)):
        return Actor(ADMIN_USER, Role.admin)
    return None


def require(request: Request, settings: Settings, store: ObjectStore) -> Actor:
    """The caller, or 401 ``unauthorized``."""
    actor = resolve(request, settings, store)
    if actor is None:
        raise Unauthorized("missing or invalid session")
    return actor


def _token_actor(keys: SigningKeys, store: ObjectStore, token: str, from_cookie: bool) -> Actor | None:
    try:
        claims = tokens.decode(keys.token_key(), token, "access")
    except Unauthorized:
        return None
    user = load_user(store, claims.user)
    if user is None or user.disabled:
        return None
    if not tokens.is_live(tokens.load_family(store, claims.family), claims.user):
        return None
    return Actor(user.name, user.role, token=claims, token_from_cookie=from_cookie)
