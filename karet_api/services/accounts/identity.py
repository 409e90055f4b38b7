"""Who is calling: the API key's service identity, a user's access token, or Karet's admin session.

Tried in this order: ``KARET_API_KEY`` (``X-API-Key`` or ``Authorization: Bearer``; the service ``api``,
an admin), an access token in ``Authorization: Bearer`` or the ``karet_token`` cookie, then Karet's
``karet_session`` cookie (the admin). A token's user is read from the store on every request, so a role
change or a disabled account takes effect at once rather than when the token expires.
"""

import threading
from dataclasses import dataclass

from fastapi import Request

from karet_api.services import auth
from karet_api.services.accounts import tokens
from karet_api.services.accounts.users import ADMIN_USER, Role, load_user
from karet_defs.errors import Unauthorized
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectStore

ACCESS_COOKIE = "karet_token"
REFRESH_COOKIE = "karet_refresh"
SERVICE_USER = "api"
_key_lock = threading.Lock()


@dataclass(frozen=True)
class Actor:
    name: str
    role: Role
    service: bool = False
    token: tokens.Claims | None = None  # the access token that identified the caller, if one did
    token_from_cookie: bool = False


def jwt_key(request: Request, settings: Settings) -> bytes:
    """The app's token signing key, derived once from the session secret."""
    key: bytes | None = getattr(request.app.state, "karet_jwt_key", None)
    if key is None:
        with _key_lock:
            key = getattr(request.app.state, "karet_jwt_key", None)
            if key is None:
                key = tokens.signing_key(auth.resolve_session_secret(settings))
                request.app.state.karet_jwt_key = key
    return key


def resolve(request: Request, settings: Settings, store: ObjectStore) -> Actor | None:
    """The caller, or None when nothing valid identifies one."""
    if auth.api_key_matches(request, settings):
        return Actor(SERVICE_USER, Role.admin, service=True)
    bearer = auth.presented_api_key(request) if "authorization" in request.headers else ""
    for token, from_cookie in ((bearer, False), (request.cookies.get(ACCESS_COOKIE, ""), True)):
        if token:
            actor = _token_actor(request, settings, store, token, from_cookie)
            if actor is not None:
                return actor
    if auth.has_valid_session(request, settings):
        return Actor(ADMIN_USER, Role.admin)
    return None


def require(request: Request, settings: Settings, store: ObjectStore) -> Actor:
    """The caller, or 401 ``unauthorized``."""
    actor = resolve(request, settings, store)
    if actor is None:
        raise Unauthorized("missing or invalid session")
    return actor


def _token_actor(
    request: Request, settings: Settings, store: ObjectStore, token: str, from_cookie: bool
) -> Actor | None:
    try:
        claims = tokens.decode(jwt_key(request, settings), token, "access")
    except Unauthorized:
        return None
    user = load_user(store, claims.user)
    if user is None or user.disabled:
        return None
    if not tokens.is_live(tokens.load_family(store, claims.family), claims.user):
        return None
    return Actor(user.name, user.role, token=claims, token_from_cookie=from_cookie)
