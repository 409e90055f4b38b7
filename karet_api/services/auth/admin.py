"""Karet's admin record, ``_auth/admin.json`` in the pipelines bucket: setup, login and password change.

The record holds an argon2id hash. Setup creates it with a conditional put, so of two concurrent setups
exactly one wins, and a password change is a compare-and-swap on its ETag. Password checks spend an attempt
of the client's rate limit (``services.accounts.ratelimit``) and one of two verification slots, and with no
admin they still hash against a dummy, so timing does not reveal the state.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from karet_api.services.accounts import audit
from karet_api.services.auth.passwords import (
    check_new_password,
    hash_password,
    matches_hash,
    verify_password,
)
from karet_api.services.auth.secret import SigningKeys
from karet_api.services.auth.state import AuthState
from karet_defs.errors import BadRequest, Conflict, NotFound, PreconditionFailed, Unauthorized
from karet_defs.store.base import ObjectStore
from karet_defs.store.reads import read_json_record

ADMIN_KEY = "_auth/admin.json"
ADMIN_USER = "admin"


@dataclass(frozen=True)
class AdminRecord:
    password_hash: str
    created_at: str
    etag: str


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


def create_admin(keys: SigningKeys, store: ObjectStore, password: str) -> None:
    """Create the admin once; ``already_initialized`` if one exists, even one created concurrently."""
    check_new_password(password)
    # Fail on a missing secret before writing an admin nobody could then log in as.
    keys.session_signer()
    if not needs_setup(store):
        raise _already_initialized()
    document = _admin_document(hash_password(password), created_at=now_iso())
    try:
        store.put(ADMIN_KEY, document, content_type="application/json", if_none_match=True)
    except PreconditionFailed as exc:
        raise _already_initialized() from exc


def login(auth: AuthState, store: ObjectStore, client: str, password: str | None) -> None:
    """Check the admin password of a login from ``client`` under the throttle; ``invalid_credentials``
    unless it is right."""
    if not password:
        raise Unauthorized("Password is required.", code="invalid_credentials")
    auth.keys.session_signer()
    auth.limiter.hit_login(client, ADMIN_USER)
    admin = load_admin(store)
    with auth.limiter.verification_slot():
        verified = verify_password(admin.password_hash if admin else None, password)
    if not verified:
        audit.record(store, "login_failed", actor=ADMIN_USER, client=client)
        raise Unauthorized("Invalid password.", code="invalid_credentials")
    auth.limiter.clear_login(client, ADMIN_USER)
    audit.record(store, "login", actor=ADMIN_USER, client=client, via="password")


def change_password(
    auth: AuthState, store: ObjectStore, client: str, current_password: str | None, new_password: str | None
) -> None:
    """Replace the admin password after checking the current one (throttled like a login)."""
    if not current_password:
        raise BadRequest("currentPassword is required.", code="missing_current_password")
    if not new_password:
        raise BadRequest("newPassword is required.", code="missing_new_password")
    check_new_password(new_password)
    admin = load_admin(store)
    if admin is None:
        raise _no_admin()
    # A stolen cookie must not become an unthrottled oracle for the password itself.
    auth.limiter.hit_login(client, ADMIN_USER)
    with auth.limiter.verification_slot():
        if not matches_hash(admin.password_hash, current_password):
            raise Unauthorized("Current password is incorrect.", code="wrong_password")
        new_hash = hash_password(new_password)
    auth.limiter.clear_login(client, ADMIN_USER)
    _put_hash(store, admin, new_hash)


def replace_admin_password(store: ObjectStore, password_hash: str) -> None:
    """Write a new hash into the admin record, keeping its creation time; 412 if it changed meanwhile."""
    admin = load_admin(store)
    if admin is None:
        raise _no_admin()
    _put_hash(store, admin, password_hash)


def now_iso() -> str:
    """Now in UTC as ``2026-01-02T03:04:05.678Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _put_hash(store: ObjectStore, admin: AdminRecord, password_hash: str) -> None:
    # If-Match: a concurrent change makes this one fail (412) instead of silently overwriting it.
    store.put(
        ADMIN_KEY,
        _admin_document(password_hash, created_at=admin.created_at),
        content_type="application/json",
        if_match=admin.etag,
    )


def _admin_document(password_hash: str, *, created_at: str) -> bytes:
    return json.dumps({"version": 1, "password_hash": password_hash, "created_at": created_at}).encode()


def _no_admin() -> NotFound:
    return NotFound("No admin exists; run setup first.", code="no_admin")


def _already_initialized() -> Conflict:
    return Conflict("The admin password is already set; log in instead.", code="already_initialized")
