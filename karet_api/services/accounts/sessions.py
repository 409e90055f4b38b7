"""User sign-in with tokens: login, refresh, logout, the sliding renewal, and the first setup.

These take plain values (the app's ``AuthState`` or keys, the store, the client address, the tokens
presented); the routes read them from the request and set the cookies these name on the response.

The access token also travels in the ``karet_token`` cookie (15 minutes, renewed by ``GET /api/auth/me``
while a page is open, so an idle page logs out and a busy one never does) and the refresh token in
``karet_refresh``, scoped to ``/v1/api/auth`` so it is sent nowhere else.
"""

import time
from dataclasses import dataclass

from karet_api.services.accounts import audit, tokens
from karet_api.services.accounts.identity import ACCESS_COOKIE, REFRESH_COOKIE, Actor
from karet_api.services.accounts.users import (
    RESERVED_NAMES,
    Role,
    User,
    check_name,
    create_user,
    load_user,
)
from karet_api.services.auth import admin
from karet_api.services.auth.cookies import cookie_header
from karet_api.services.auth.passwords import check_new_password, verify_password
from karet_api.services.auth.secret import SigningKeys
from karet_api.services.auth.state import AuthState
from karet_defs.errors import Conflict, InvalidUser, TokenReused, TokenRevoked, Unauthorized
from karet_defs.store.base import ObjectStore

REFRESH_COOKIE_PATH = "/v1/api/auth"


@dataclass(frozen=True)
class SignedIn:
    user: User
    pair: tokens.TokenPair


def login(auth: AuthState, store: ObjectStore, client: str, name: str, password: str) -> SignedIn:
    """Check a user's password under the rate limits of ``client`` (its address) and start a token family."""
    if not name or not password:
        raise Unauthorized("user and password are required", code="invalid_credentials")
    key = auth.keys.token_key()
    auth.limiter.hit_login(client, name)
    user = load_user(store, name)
    with auth.limiter.verification_slot():
        verified = verify_password(user.password_hash if user else None, password)
    if user is None or not verified or user.disabled:
        audit.record(store, "login_failed", actor=name, client=client)
        raise Unauthorized("Invalid user or password.", code="invalid_credentials")
    auth.limiter.clear_login(client, name)
    family, pair = tokens.start(store, key, user.name)
    audit.record(store, "login", actor=user.name, client=client, via="token", family=family)
    return SignedIn(user, pair)


def refresh(auth: AuthState, store: ObjectStore, client: str, token: str) -> SignedIn:
    """Rotate the pair of a refresh token (``""``: none was presented) under the refresh limit."""
    auth.limiter.hit_refresh(client)
    if not token:
        raise Unauthorized("a refresh token is required")
    try:
        claims, pair = tokens.rotate(store, auth.keys.token_key(), token)
    except TokenReused:
        audit.record(store, "token_revoked", actor="", client=client, reason="refresh token reused")
        raise
    user = load_user(store, claims.user)
    if user is None or user.disabled:
        tokens.revoke(store, claims.family)
        raise TokenRevoked("the account is disabled")
    return SignedIn(user, pair)


def logout(
    keys: SigningKeys,
    store: ObjectStore,
    client: str,
    *,
    bearer: str,
    access_cookie: str,
    refresh_cookie: str,
) -> None:
    """Revoke the family of the first valid token presented: the bearer (access or refresh), then the
    cookies; empty values were not presented."""
    key = keys.token_key()
    candidates: list[tuple[str, tokens.Kind]] = [
        (bearer, "access"),
        (bearer, "refresh"),
        (access_cookie, "access"),
        (refresh_cookie, "refresh"),
    ]
    for token, kind in candidates:
        if not token:
            continue
        try:
            claims = tokens.decode(key, token, kind)
        except Unauthorized:
            continue
        if tokens.revoke(store, claims.family):
            audit.record(store, "token_revoked", actor=claims.user, client=client, reason="logout")
        return


def renew(keys: SigningKeys, store: ObjectStore, actor: Actor) -> tokens.TokenPair | None:
    """A fresh access token when ``actor`` came with one that has under 5 minutes left (karma.run's slide)."""
    claims = actor.token
    if claims is None or claims.expires - time.time() > tokens.RENEW_WITHIN_SECONDS:
        return None
    family = tokens.load_family(store, claims.family)
    if family is None or not tokens.is_live(family, claims.user):
        return None
    return tokens.renew_access(keys.token_key(), claims, family)


def token_cookies(pair: tokens.TokenPair, *, secure: bool) -> list[str]:
    """The ``Set-Cookie`` values of the access cookie, and of the refresh cookie when the pair has one."""
    cookies = [cookie_header(ACCESS_COOKIE, pair.access_token, pair.expires_in, secure=secure)]
    if pair.refresh_token:
        cookies.append(
            cookie_header(
                REFRESH_COOKIE,
                pair.refresh_token,
                tokens.REFRESH_TTL_SECONDS,
                path=REFRESH_COOKIE_PATH,
                secure=secure,
            )
        )
    return cookies


def cleared_cookies(*, secure: bool) -> list[str]:
    """The ``Set-Cookie`` values that drop both token cookies."""
    return [
        cookie_header(ACCESS_COOKIE, "", 0, secure=secure),
        cookie_header(REFRESH_COOKIE, "", 0, path=REFRESH_COOKIE_PATH, secure=secure),
    ]


def setup(
    keys: SigningKeys,
    store: ObjectStore,
    client: str,
    *,
    name: str,
    password: str,
    root_password: str | None,
    email: str,
) -> User:
    """KalamDB's bootstrap: the admin (root) gets ``root_password`` (else ``password``), and a user other
    than ``admin`` is created as a second administrator with ``password``. No login follows."""
    if not admin.needs_setup(store):
        raise Conflict("The instance is already set up; log in instead.", code="already_initialized")
    second = name != admin.ADMIN_USER
    if second and (check_name(name) in RESERVED_NAMES):
        raise InvalidUser(f"the user name {name!r} is reserved")
    for candidate in (password, root_password or password):
        check_new_password(candidate)
    admin.create_admin(keys, store, (root_password or password) if second else password)
    user = create_user(store, name, password, Role.admin, email=email) if second else load_user(store, name)
    if user is None:
        raise Conflict("The admin was removed during setup.", code="already_initialized")
    audit.record(store, "setup", actor=name, client=client)
    return user
