"""Access and refresh tokens (KalamDB's shapes): JWTs signed with a key derived from the session secret.

An access token lives 15 minutes, a refresh token 7 days. Each login starts a token family,
``_auth/tokens/<family>.json`` holding the generation of its one live refresh token; a refresh must present
exactly that generation and moves it on by a compare-and-swap, so a spent refresh token presented again
(stolen and replayed, or raced) revokes the whole family, and with it every access token it issued: access
tokens are checked against their family on each request. A family never outlives its 7 days, not even
through sliding renewals (``renew_access``).
"""

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from karet_defs.errors import (
    InvalidToken,
    PreconditionFailed,
    TokenExpired,
    TokenReused,
    TokenRevoked,
)
from karet_defs.store.base import ObjectStore
from karet_defs.store.reads import read_json_record

ACCESS_TTL_SECONDS = 15 * 60
REFRESH_TTL_SECONDS = 7 * 24 * 60 * 60
# Less left than this and ``GET /api/auth/me`` renews an access token (karma.run polls every 10 of 15 min).
RENEW_WITHIN_SECONDS = 5 * 60
FAMILIES_PREFIX = "_auth/tokens/"
ISSUER = "karet"
ALGORITHM = "HS256"
_KEY_PURPOSE = b"karet-jwt-v1"

Kind = Literal["access", "refresh"]


@dataclass(frozen=True)
class Claims:
    user: str
    kind: Kind
    family: str
    generation: int
    expires: int


@dataclass(frozen=True)
class Family:
    user: str
    generation: int
    revoked: bool
    expires: int
    etag: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int = ACCESS_TTL_SECONDS


def signing_key(session_secret: str) -> bytes:
    """The JWT key: derived from the session secret, so one secret file serves both and rotating it logs
    everybody out, yet a cookie signature never doubles as a token signature."""
    return hmac.new(session_secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest()


def family_key(family: str) -> str:
    return f"{FAMILIES_PREFIX}{family}.json"


def decode(key: bytes, token: str, kind: Kind) -> Claims:
    """The claims of a token of ``kind`` that is signed with ``key``, unexpired and well formed."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "typ", "fam", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("the token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("the token is not valid") from exc
    generation = claims.get("gen", 0)
    if (
        claims["typ"] != kind
        or not isinstance(claims["sub"], str)
        or not isinstance(claims["fam"], str)
        or not isinstance(generation, int)
    ):
        raise InvalidToken(f"not an {kind} token" if kind == "access" else "not a refresh token")
    return Claims(claims["sub"], kind, claims["fam"], generation, int(claims["exp"]))


def load_family(store: ObjectStore, family: str) -> Family | None:
    """The family ``family``, or None (never issued, or pruned)."""
    if not family.replace("-", "").replace("_", "").isalnum():
        return None
    info = store.head(family_key(family))
    if info is None:
        return None
    document = read_json_record(store, family_key(family))
    if not document:  # gone, or damaged: a family that cannot be read refreshes nothing
        return None
    return Family(
        user=str(document.get("user", "")),
        generation=int(document.get("generation", -1)),
        revoked=document.get("revoked") is not False,
        expires=int(document.get("expires", 0)),
        etag=info.etag,
    )


def is_live(family: Family | None, user: str, *, now: float | None = None) -> bool:
    """Whether a family exists for ``user``, is not revoked and has not outlived its 7 days."""
    moment = time.time() if now is None else now
    return family is not None and family.user == user and not family.revoked and family.expires > moment


def start(store: ObjectStore, key: bytes, user: str) -> tuple[str, TokenPair]:
    """A new family for ``user`` and its first pair."""
    family = secrets.token_urlsafe(16)
    now = int(time.time())
    expires = now + REFRESH_TTL_SECONDS
    store.put(
        family_key(family),
        _family_document(user, 0, revoked=False, expires=expires),
        content_type="application/json",
        if_none_match=True,
    )
    return family, _pair(key, user, family, 0, now, expires)


def rotate(store: ObjectStore, key: bytes, refresh_token: str) -> tuple[Claims, TokenPair]:
    """The next pair for a live refresh token; a spent one revokes its family (``token_reused``)."""
    claims = decode(key, refresh_token, "refresh")
    family = load_family(store, claims.family)
    if family is None or not is_live(family, claims.user):
        raise TokenRevoked("the session was revoked or has ended")
    if claims.generation != family.generation:
        revoke(store, claims.family)
        raise TokenReused("a spent refresh token was presented; the session is revoked")
    now = int(time.time())
    try:
        store.put(
            family_key(claims.family),
            _family_document(claims.user, family.generation + 1, revoked=False, expires=family.expires),
            content_type="application/json",
            if_match=family.etag,
        )
    except PreconditionFailed as exc:
        # Another request spent the same token first: one of the two is a replay, and we cannot tell which.
        revoke(store, claims.family)
        raise TokenReused("a spent refresh token was presented; the session is revoked") from exc
    return claims, _pair(key, claims.user, claims.family, family.generation + 1, now, family.expires)


def revoke(store: ObjectStore, family: str) -> bool:
    """Revoke a family (every token it issued); False when it was unknown or already revoked."""
    for _ in range(5):
        current = load_family(store, family)
        if current is None or current.revoked:
            return False
        try:
            store.put(
                family_key(family),
                _family_document(current.user, current.generation, revoked=True, expires=current.expires),
                content_type="application/json",
                if_match=current.etag,
            )
            return True
        except PreconditionFailed:
            continue  # a rotation moved it meanwhile: revoke what it is now
    return False


def renew_access(key: bytes, claims: Claims, family: Family) -> TokenPair:
    """A fresh access token of the same family (no refresh token), never outliving the family."""
    now = int(time.time())
    expires = min(now + ACCESS_TTL_SECONDS, family.expires)
    access = _encode(key, claims.user, "access", claims.family, claims.generation, now, expires)
    return TokenPair(access, "", expires - now)


def _pair(key: bytes, user: str, family: str, generation: int, now: int, family_expires: int) -> TokenPair:
    access_exp = min(now + ACCESS_TTL_SECONDS, family_expires)
    return TokenPair(
        access_token=_encode(key, user, "access", family, generation, now, access_exp),
        refresh_token=_encode(key, user, "refresh", family, generation, now, family_expires),
        expires_in=access_exp - now,
    )


def _encode(key: bytes, user: str, kind: Kind, family: str, generation: int, now: int, expires: int) -> str:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": user,
        "typ": kind,
        "fam": family,
        "gen": generation,
        "iat": now,
        "exp": expires,
        "jti": secrets.token_urlsafe(8),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def _family_document(user: str, generation: int, *, revoked: bool, expires: int) -> bytes:
    return json.dumps(
        {"user": user, "generation": generation, "revoked": revoked, "expires": expires}
    ).encode()
