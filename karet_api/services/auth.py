"""Karet's single admin (§4.14): its password, the API key check and the session cookie.

Who a request is (the API key, an access token, this cookie) is decided in ``services.accounts.identity``;
the cookie ``karet_session`` is an itsdangerous signed, timestamped token valid for 7 days and kept nowhere on
the server, so rotating the session secret revokes every session. The secret is ``KARET_SESSION_SECRET``;
when it is empty the local store generates one once into ``<data_dir>/.karet-secrets/session_secret``,
while with S3 it is required and its absence answers ``500 server_misconfigured``. The admin is one
object, ``_auth/admin.json`` in the pipelines bucket, holding an argon2id hash; setup creates it with a
conditional put, so of two concurrent setups exactly one wins. Password checks spend an attempt of the
client's rate limit (``services.accounts.ratelimit``) and one of two verification slots, and with no admin
they still hash against a dummy, so timing does not reveal the state. The session signer lives on
``app.state`` and is built on first use.
"""

import hmac
import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from karet_api.bearer import bearer_token
from karet_api.services.accounts import audit, ratelimit
from karet_defs.errors import (
    BadRequest,
    Conflict,
    KaretError,
    NotFound,
    PreconditionFailed,
    Unauthorized,
    Unprocessable,
)
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectStore
from karet_defs.store.reads import read_json_record

SESSION_COOKIE = "karet_session"
SESSION_TTL_SECONDS = 7 * 24 * 60 * 60
SESSION_SALT = "karet-session"
MIN_PASSWORD_LENGTH = 8
ADMIN_KEY = "_auth/admin.json"
SECRET_DIR_NAME = ".karet-secrets"
SECRET_FILE_NAME = "session_secret"

ADMIN_USER = "admin"
_hasher = PasswordHasher()
# Guards only the lazy creation of each app's ``AuthState``; the state itself is per app.
_state_lock = threading.Lock()


@dataclass
class AuthState:
    """What one app keeps between requests: the session signer, once resolved."""

    serializer: URLSafeTimedSerializer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class AdminRecord:
    password_hash: str
    created_at: str
    etag: str


def auth_state(app: Any) -> AuthState:
    """The ``AuthState`` of ``app``, created on first use."""
    state: AuthState | None = getattr(app.state, "karet_auth", None)
    if state is None:
        with _state_lock:
            state = getattr(app.state, "karet_auth", None)
            if state is None:
                state = AuthState()
                app.state.karet_auth = state
    return state


def forget_secrets(app: Any) -> None:
    """Drop the app's signer and token key, so the next request resolves the session secret again."""
    app.state.karet_auth = AuthState()
    app.state.karet_jwt_key = None


def presented_api_key(request: Request) -> str:
    """The key in ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    header = request.headers.get("x-api-key")
    if header:
        return header
    return bearer_token(request)


def api_key_matches(request: Request, settings: Settings) -> bool:
    """Whether the request presents the configured API key (compared in constant time)."""
    expected = settings.api_key
    presented = presented_api_key(request)
    return bool(expected and presented) and hmac.compare_digest(presented.encode(), expected.encode())


def session_serializer(request: Request, settings: Settings) -> URLSafeTimedSerializer:
    """The app's session signer, built from the resolved secret on first use."""
    state = auth_state(request.app)
    if state.serializer is None:
        with state.lock:
            if state.serializer is None:
                state.serializer = URLSafeTimedSerializer(resolve_session_secret(settings), salt=SESSION_SALT)
    return state.serializer


def resolve_session_secret(settings: Settings) -> str:
    """``KARET_SESSION_SECRET``, else the local store's generated one; with S3 it must be configured."""
    if settings.session_secret:
        return settings.session_secret
    if settings.uses_s3:
        raise KaretError("KARET_SESSION_SECRET is not set", code="server_misconfigured")
    return local_session_secret(settings.data_dir)


def local_session_secret(data_dir: Path) -> str:
    """The secret in ``<data_dir>/.karet-secrets/session_secret``, generated (mode 0600) on first call."""
    folder = data_dir / SECRET_DIR_NAME
    path = folder / SECRET_FILE_NAME
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{SECRET_FILE_NAME}.")  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
                f.flush()
                os.fsync(f.fileno())
            # link() publishes the complete file only if none exists: of two starting processes one wins and
            # both then read the same secret, never a half-written one.
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    secret = path.read_text().strip()
    if not secret:
        raise KaretError(f"The session secret file {path} is empty", code="server_misconfigured")
    return secret


def has_valid_session(request: Request, settings: Settings) -> bool:
    """Whether the request carries an untampered, unexpired ``karet_session`` cookie."""
    serializer = session_serializer(request, settings)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return False
    try:
        payload = serializer.loads(token, max_age=SESSION_TTL_SECONDS)
    except BadData:  # bad signature, expired, future-dated or malformed: all simply "not logged in"
        return False
    return isinstance(payload, dict) and payload.get("sub") == ADMIN_USER


def issue_session(request: Request, settings: Settings, response: Response) -> None:
    """Set a fresh 7-day session cookie on ``response``."""
    token = session_serializer(request, settings).dumps({"sub": ADMIN_USER})
    response.headers.append("set-cookie", _cookie(request, token, SESSION_TTL_SECONDS))


def clear_session(request: Request, response: Response) -> None:
    """Set the cookie that makes the browser drop its session."""
    response.headers.append("set-cookie", _cookie(request, "", 0))


def _cookie(request: Request, value: str, max_age: int) -> str:
    # Written by hand to match Karet's header byte for byte (SimpleCookie would quote the empty value).
    parts = [f"{SESSION_COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if request.url.scheme == "https":
        parts.append("Secure")
    return "; ".join(parts)


def needs_setup(store: ObjectStore) -> bool:
    """Whether no admin exists yet."""
    return store.head(ADMIN_KEY) is None


def load_admin(store: ObjectStore) -> AdminRecord | None:
    """The admin record, or None; an unreadable record keeps an empty hash, which never verifies."""
    info = store.head(ADMIN_KEY)
    if info is None:
        return None
    document = read_json_record(store, ADMIN_KEY)
    if document is None:
        return None
    password_hash = document.get("password_hash")
    created_at = document.get("created_at")
    return AdminRecord(
        password_hash=password_hash if isinstance(password_hash, str) else "",
        created_at=created_at if isinstance(created_at, str) else now_iso(),
        etag=info.etag,
    )


def create_admin(request: Request, settings: Settings, store: ObjectStore, password: str) -> None:
    """Create the admin once; ``already_initialized`` if one exists, even one created concurrently."""
    check_new_password(password)
    # Fail on a missing secret before writing an admin nobody could then log in as.
    session_serializer(request, settings)
    if not needs_setup(store):
        raise _already_initialized()
    document = _admin_document(_hasher.hash(password), created_at=now_iso())
    try:
        store.put(ADMIN_KEY, document, content_type="application/json", if_none_match=True)
    except PreconditionFailed as exc:
        raise _already_initialized() from exc


def login(request: Request, settings: Settings, store: ObjectStore, password: str | None) -> None:
    """Check the admin password under the throttle; ``invalid_credentials`` unless it is right."""
    if not password:
        raise Unauthorized("Password is required.", code="invalid_credentials")
    session_serializer(request, settings)
    limiter = ratelimit.limiter(request.app)
    limiter.hit_login(request, ADMIN_USER)
    admin = load_admin(store)
    with limiter.verification_slot():
        verified = verify_password(admin.password_hash if admin else None, password)
    if not verified:
        audit.record(store, "login_failed", actor=ADMIN_USER, client=ratelimit.client_key(request))
        raise Unauthorized("Invalid password.", code="invalid_credentials")
    limiter.clear_login(request, ADMIN_USER)
    audit.record(store, "login", actor=ADMIN_USER, client=ratelimit.client_key(request), via="password")


def change_password(
    request: Request, store: ObjectStore, current_password: str | None, new_password: str | None
) -> None:
    """Replace the admin password after checking the current one (throttled like a login)."""
    if not current_password:
        raise BadRequest("currentPassword is required.", code="missing_current_password")
    if not new_password:
        raise BadRequest("newPassword is required.", code="missing_new_password")
    check_new_password(new_password)
    admin = load_admin(store)
    if admin is None:
        raise NotFound("No admin exists; run setup first.", code="no_admin")
    # A stolen cookie must not become an unthrottled oracle for the password itself.
    limiter = ratelimit.limiter(request.app)
    limiter.hit_login(request, ADMIN_USER)
    with limiter.verification_slot():
        if not _verify(admin.password_hash, current_password):
            raise Unauthorized("Current password is incorrect.", code="wrong_password")
        new_hash = _hasher.hash(new_password)
    limiter.clear_login(request, ADMIN_USER)
    # If-Match: a concurrent change makes this one fail (412) instead of silently overwriting it.
    store.put(
        ADMIN_KEY,
        _admin_document(new_hash, created_at=admin.created_at),
        content_type="application/json",
        if_match=admin.etag,
    )


def replace_admin_password(store: ObjectStore, password_hash: str) -> None:
    """Write a new hash into the admin record, keeping its creation time; 412 if it changed meanwhile."""
    admin = load_admin(store)
    if admin is None:
        raise NotFound("No admin exists; run setup first.", code="no_admin")
    store.put(
        ADMIN_KEY,
        _admin_document(password_hash, created_at=admin.created_at),
        content_type="application/json",
        if_match=admin.etag,
    )


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash it still costs one verification (against a dummy)."""
    return _verify(password_hash or _dummy_hash(), password) and bool(password_hash)


def check_new_password(password: str) -> None:
    """Refuse a password shorter than 8 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable(
            f"Password must be at least {MIN_PASSWORD_LENGTH} characters", code="invalid_password"
        )


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, ValueError):  # ValueError covers a malformed stored hash
        return False


@cache
def _dummy_hash() -> str:
    # Same parameters as real hashes, of a password nobody knows: checks without an admin cost the same.
    return _hasher.hash(secrets.token_urlsafe(32))


def _admin_document(password_hash: str, *, created_at: str) -> bytes:
    return json.dumps({"version": 1, "password_hash": password_hash, "created_at": created_at}).encode()


def now_iso() -> str:
    """Now in UTC as ``2026-01-02T03:04:05.678Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _already_initialized() -> Conflict:
    return Conflict("The admin password is already set; log in instead.", code="already_initialized")
