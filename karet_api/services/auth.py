"""Who may call ``/api/*``, and Karet's single admin: password, session cookie, login throttle (§4.14).

A request is authenticated by the API key (``X-API-Key`` or ``Authorization: Bearer``) or by the session
cookie ``karet_session``: an itsdangerous signed, timestamped token valid for 7 days and kept nowhere on
the server, so rotating the session secret revokes every session. The secret is ``KARET_SESSION_SECRET``;
when it is empty the local store generates one once into ``<data_dir>/.karet-secrets/session_secret``,
while with S3 it is required and its absence answers ``500 server_misconfigured``. The admin is one
object, ``_auth/admin.json`` in the pipelines bucket, holding an argon2id hash; setup creates it with a
conditional put, so of two concurrent setups exactly one wins. Password checks spend a token of the
client's bucket and one of two global verification slots, and with no admin they still hash against a
dummy, so timing does not reveal the state. Per-app state (the signer, the throttle) lives on
``app.state`` and is built on first use.
"""

import hmac
import json
import math
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from karet_defs.errors import (
    BadRequest,
    Conflict,
    KaretError,
    NotFound,
    ObjectNotFound,
    PreconditionFailed,
    RateLimited,
    Unauthorized,
    Unprocessable,
)
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectStore

SESSION_COOKIE = "karet_session"
SESSION_TTL_SECONDS = 7 * 24 * 60 * 60
SESSION_SALT = "karet-session"
MIN_PASSWORD_LENGTH = 8
ADMIN_KEY = "_auth/admin.json"
SECRET_DIR_NAME = ".karet-secrets"
SECRET_FILE_NAME = "session_secret"

LOGIN_BURST = 5
LOGIN_REFILL_SECONDS = 15.0
LOGIN_MAX_CLIENTS = 10_000
LOGIN_MAX_CONCURRENT = 2
BUSY_RETRY_AFTER = 2

_SESSION_SUBJECT = "admin"
_hasher = PasswordHasher()
# Guards only the lazy creation of each app's ``AuthState``; the state itself is per app.
_state_lock = threading.Lock()


class LoginThrottle:
    """Token buckets per client key, plus a global cap on concurrent password verifications."""

    def __init__(
        self,
        *,
        burst: int = LOGIN_BURST,
        refill_seconds: float = LOGIN_REFILL_SECONDS,
        max_clients: int = LOGIN_MAX_CLIENTS,
        max_concurrent: int = LOGIN_MAX_CONCURRENT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_clients = max_clients
        self.clock = clock
        # client -> when its bucket is full again (a token bucket kept as one timestamp, GCRA-style, so
        # refills are exact sums of ``refill_seconds`` rather than drifting fractions); LRU order.
        self._full_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def take(self, client: str) -> None:
        """Spend one attempt of ``client``, or raise ``RateLimited`` with the seconds until its next token."""
        with self._lock:
            now = self.clock()
            full_at = max(self._full_at.pop(client, now), now) + self.refill_seconds
            wait = full_at - now - self.burst * self.refill_seconds
            if wait > 0:
                self._remember(client, full_at - self.refill_seconds)
                raise RateLimited(
                    "Too many login attempts; wait before retrying.", retry_after=max(1, math.ceil(wait))
                )
            self._remember(client, full_at)

    def forget(self, client: str) -> None:
        """Drop the bucket of ``client`` (after a successful login)."""
        with self._lock:
            self._full_at.pop(client, None)

    def tracked(self) -> list[str]:
        """The tracked client keys, least recently attempted first."""
        with self._lock:
            return list(self._full_at)

    @contextmanager
    def verification_slot(self) -> Iterator[None]:
        """Hold one of the global verification slots, or raise ``server_busy`` when none is free."""
        # argon2 costs 64 MiB and a core per check: refusing beats queueing an unbounded crowd.
        if not self._slots.acquire(blocking=False):
            raise RateLimited(
                "Too many concurrent login attempts; try again shortly.",
                retry_after=BUSY_RETRY_AFTER,
                code="server_busy",
            )
        try:
            yield
        finally:
            self._slots.release()

    def _remember(self, client: str, full_at: float) -> None:
        self._full_at[client] = full_at
        while len(self._full_at) > self.max_clients:
            self._full_at.popitem(last=False)


@dataclass
class AuthState:
    """What one app keeps between requests: the session signer (once resolved) and the login throttle."""

    throttle: LoginThrottle = field(default_factory=LoginThrottle)
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


def presented_api_key(request: Request) -> str:
    """The key in ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    header = request.headers.get("x-api-key")
    if header:
        return header
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_key_matches(request: Request, settings: Settings) -> bool:
    """Whether the request presents the configured API key (compared in constant time)."""
    expected = settings.api_key
    presented = presented_api_key(request)
    return bool(expected and presented) and hmac.compare_digest(presented.encode(), expected.encode())


def is_authenticated(request: Request, settings: Settings) -> bool:
    """The API key or a valid session cookie; raises ``server_misconfigured`` when no secret can be had."""
    # The API key needs no session secret, so machine clients keep working on a misconfigured S3 deployment.
    return api_key_matches(request, settings) or has_valid_session(request, settings)


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
    return isinstance(payload, dict) and payload.get("sub") == _SESSION_SUBJECT


def issue_session(request: Request, settings: Settings, response: Response) -> None:
    """Set a fresh 7-day session cookie on ``response``."""
    token = session_serializer(request, settings).dumps({"sub": _SESSION_SUBJECT})
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


def client_key(request: Request) -> str:
    """The throttle key: the first ``X-Forwarded-For`` hop, else the peer address, else ``unknown``."""
    first_hop = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    if first_hop:
        return first_hop
    return request.client.host if request.client and request.client.host else "unknown"


def needs_setup(store: ObjectStore) -> bool:
    """Whether no admin exists yet."""
    return store.head(ADMIN_KEY) is None


def load_admin(store: ObjectStore) -> AdminRecord | None:
    """The admin record, or None; an unreadable record keeps an empty hash, which never verifies."""
    info = store.head(ADMIN_KEY)
    if info is None:
        return None
    try:
        document = json.loads(store.get(ADMIN_KEY))
    except ObjectNotFound:
        return None
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    password_hash = document.get("password_hash")
    created_at = document.get("created_at")
    return AdminRecord(
        password_hash=password_hash if isinstance(password_hash, str) else "",
        created_at=created_at if isinstance(created_at, str) else _now_iso(),
        etag=info.etag,
    )


def create_admin(request: Request, settings: Settings, store: ObjectStore, password: str) -> None:
    """Create the admin once; ``already_initialized`` if one exists, even one created concurrently."""
    check_new_password(password)
    # Fail on a missing secret before writing an admin nobody could then log in as.
    session_serializer(request, settings)
    if not needs_setup(store):
        raise _already_initialized()
    document = _admin_document(_hasher.hash(password), created_at=_now_iso())
    try:
        store.put(ADMIN_KEY, document, content_type="application/json", if_none_match=True)
    except PreconditionFailed as exc:
        raise _already_initialized() from exc


def login(request: Request, settings: Settings, store: ObjectStore, password: str | None) -> None:
    """Check the admin password under the throttle; ``invalid_credentials`` unless it is right."""
    if not password:
        raise Unauthorized("Password is required.", code="invalid_credentials")
    session_serializer(request, settings)
    throttle = auth_state(request.app).throttle
    client = client_key(request)
    throttle.take(client)
    admin = load_admin(store)
    with throttle.verification_slot():
        verified = _verify(admin.password_hash if admin else _dummy_hash(), password)
    if not (admin and verified):
        raise Unauthorized("Invalid password.", code="invalid_credentials")
    throttle.forget(client)


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
    throttle = auth_state(request.app).throttle
    client = client_key(request)
    throttle.take(client)
    with throttle.verification_slot():
        if not _verify(admin.password_hash, current_password):
            raise Unauthorized("Current password is incorrect.", code="wrong_password")
        new_hash = _hasher.hash(new_password)
    throttle.forget(client)
    # If-Match: a concurrent change makes this one fail (412) instead of silently overwriting it.
    store.put(
        ADMIN_KEY,
        _admin_document(new_hash, created_at=admin.created_at),
        content_type="application/json",
        if_match=admin.etag,
    )


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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _already_initialized() -> Conflict:
    return Conflict("The admin password is already set; log in instead.", code="already_initialized")
