"""User sign-in with tokens: login, refresh, logout, the sliding renewal, and localhost-only setup.

The access token also travels in the ``karet_token`` cookie (15 minutes, renewed by ``GET /api/auth/me``
while a page is open, so an idle page logs out and a busy one never does) and the refresh token in
``karet_refresh``, scoped to ``/v1/api/auth`` so it is sent nowhere else.
"""

import ipaddress
import time
from dataclasses import dataclass

from fastapi import Request, Response

from karet_api.services import auth
from karet_api.services.accounts import audit, ratelimit, tokens
from karet_api.services.accounts.identity import ACCESS_COOKIE, REFRESH_COOKIE, Actor, jwt_key
from karet_api.services.accounts.users import (
    ADMIN_USER,
    RESERVED_NAMES,
    Role,
    User,
    check_name,
    create_user,
    load_user,
)
from karet_defs.errors import Conflict, InvalidUser, LocalhostOnly, TokenReused, TokenRevoked, Unauthorized
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectStore

REFRESH_COOKIE_PATH = "/v1/api/auth"
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


@dataclass(frozen=True)
class SignedIn:
    user: User
    pair: tokens.TokenPair


def login(request: Request, settings: Settings, store: ObjectStore, name: str, password: str) -> SignedIn:
    """Check a user's password under the rate limits and start a token family."""
    if not name or not password:
        raise Unauthorized("user and password are required", code="invalid_credentials")
    key = jwt_key(request, settings)
    limiter = ratelimit.limiter(request.app)
    limiter.hit_login(request, name)
    user = load_user(store, name)
    with limiter.verification_slot():
        verified = auth.verify_password(user.password_hash if user else None, password)
    client = ratelimit.client_key(request)
    if user is None or not verified or user.disabled:
        audit.record(store, "login_failed", actor=name, client=client)
        raise Unauthorized("Invalid user or password.", code="invalid_credentials")
    limiter.clear_login(request, name)
    family, pair = tokens.start(store, key, user.name)
    audit.record(store, "login", actor=user.name, client=client, via="token", family=family)
    return SignedIn(user, pair)


def refresh(request: Request, settings: Settings, store: ObjectStore) -> SignedIn:
    """Rotate the pair of the refresh token in ``Authorization: Bearer`` or the ``karet_refresh`` cookie."""
    ratelimit.limiter(request.app).hit_refresh(request)
    token = auth.presented_api_key(request) if "authorization" in request.headers else ""
    token = token or request.cookies.get(REFRESH_COOKIE, "")
    if not token:
        raise Unauthorized("a refresh token is required")
    try:
        claims, pair = tokens.rotate(store, jwt_key(request, settings), token)
    except TokenReused:
        audit.record(
            store,
            "token_revoked",
            actor="",
            client=ratelimit.client_key(request),
            reason="refresh token reused",
        )
        raise
    user = load_user(store, claims.user)
    if user is None or user.disabled:
        tokens.revoke(store, claims.family)
        raise TokenRevoked("the account is disabled")
    return SignedIn(user, pair)


def logout(request: Request, settings: Settings, store: ObjectStore) -> None:
    """Revoke the family of whichever token the request carries (access or refresh)."""
    key = jwt_key(request, settings)
    bearer = auth.presented_api_key(request) if "authorization" in request.headers else ""
    candidates: list[tuple[str, tokens.Kind]] = [
        (bearer, "access"),
        (bearer, "refresh"),
        (request.cookies.get(ACCESS_COOKIE, ""), "access"),
        (request.cookies.get(REFRESH_COOKIE, ""), "refresh"),
    ]
    for token, kind in candidates:
        if not token:
            continue
        try:
            claims = tokens.decode(key, token, kind)
        except Unauthorized:
            continue
        if tokens.revoke(store, claims.family):
            audit.record(
                store,
                "token_revoked",
                actor=claims.user,
                client=ratelimit.client_key(request),
                reason="logout",
            )
        return


def renew(request: Request, settings: Settings, store: ObjectStore, actor: Actor) -> tokens.TokenPair | None:
    """A fresh access token when ``actor`` came with one that has under 5 minutes left (karma.run's slide)."""
    claims = actor.token
    if claims is None or claims.expires - time.time() > tokens.RENEW_WITHIN_SECONDS:
        return None
    family = tokens.load_family(store, claims.family)
    if family is None or not tokens.is_live(family, claims.user):
        return None
    return tokens.renew_access(jwt_key(request, settings), claims, family)


def set_cookies(request: Request, response: Response, pair: tokens.TokenPair) -> None:
    """Set the access cookie, and the refresh cookie when the pair has a refresh token."""
    access = _cookie(request, ACCESS_COOKIE, pair.access_token, pair.expires_in, "/")
    response.headers.append("set-cookie", access)
    if pair.refresh_token:
        response.headers.append(
            "set-cookie",
            _cookie(
                request, REFRESH_COOKIE, pair.refresh_token, tokens.REFRESH_TTL_SECONDS, REFRESH_COOKIE_PATH
            ),
        )


def clear_cookies(request: Request, response: Response) -> None:
    response.headers.append("set-cookie", _cookie(request, ACCESS_COOKIE, "", 0, "/"))
    response.headers.append("set-cookie", _cookie(request, REFRESH_COOKIE, "", 0, REFRESH_COOKIE_PATH))


def is_local(request: Request) -> bool:
    """Whether the request comes from this host itself: a loopback peer, not relayed by a proxy."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host) in _LOOPBACK
    except ValueError:
        return host == "localhost"


def ensure_local(request: Request, settings: Settings) -> None:
    """Refuse (403) a setup or status request from another host, unless remote setup is allowed."""
    if not (settings.allow_remote_setup or is_local(request)):
        raise LocalhostOnly("setup and status answer only on localhost")


def setup(
    request: Request,
    settings: Settings,
    store: ObjectStore,
    *,
    name: str,
    password: str,
    root_password: str | None,
    email: str,
) -> User:
    """KalamDB's bootstrap: the admin (root) gets ``root_password`` (else ``password``), and a user other
    than ``admin`` is created as a second administrator with ``password``. No login follows."""
    if not auth.needs_setup(store):
        raise Conflict("The instance is already set up; log in instead.", code="already_initialized")
    second = name != ADMIN_USER
    if second and (check_name(name) in RESERVED_NAMES):
        raise InvalidUser(f"the user name {name!r} is reserved")
    for candidate in (password, root_password or password):
        auth.check_new_password(candidate)
    auth.create_admin(request, settings, store, (root_password or password) if second else password)
    user = create_user(store, name, password, Role.admin, email=email) if second else load_user(store, name)
    if user is None:
        raise Conflict("The admin was removed during setup.", code="already_initialized")
    audit.record(store, "setup", actor=name, client=ratelimit.client_key(request))
    return user


def _cookie(request: Request, name: str, value: str, max_age: int, path: str) -> str:
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if request.url.scheme == "https":
        parts.append("Secure")
    return "; ".join(parts)
