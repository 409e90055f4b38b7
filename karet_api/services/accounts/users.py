"""Users, each with an argon2 password and one instance role (admin ⊃ lead ⊃ engineer ⊃ auditor).

Karet's admin stays where it always was, ``_auth/admin.json`` with its exact E2 shape, and is the user
``admin``: it always holds the admin role and cannot be disabled, so Karet's own setup and login keep
working and an instance can never lose its last administrator. Every other user is one object,
``_auth/users/<name>.json``; creation is a conditional put and each change a compare-and-swap on the ETag,
so concurrent edits of one user fail (412) rather than overwrite each other.
"""

import json
import re
from dataclasses import dataclass
from enum import IntEnum

from karet_api.services.auth.admin import ADMIN_USER, load_admin, now_iso, replace_admin_password
from karet_api.services.auth.passwords import check_new_password, hash_password
from karet_defs.errors import (
    AdminIsPermanent,
    Conflict,
    InvalidUser,
    PreconditionFailed,
    UserNotFound,
)
from karet_defs.store.base import ObjectStore
from karet_defs.store.reads import read_json_record

USERS_PREFIX = "_auth/users/"
# ``api`` is the API key's service identity: no account may take its name in the audit log.
RESERVED_NAMES = frozenset({ADMIN_USER, "api"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Role(IntEnum):
    auditor = 1
    engineer = 2
    lead = 3
    admin = 4


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str
    created_at: str
    disabled: bool = False
    email: str = ""
    etag: str = ""

    def profile(self) -> dict[str, object]:
        """What the API shows of a user: never the hash."""
        return {
            "user": self.name,
            "role": self.role.name,
            "disabled": self.disabled,
            "email": self.email or None,
            "created_at": self.created_at,
        }


def user_key(name: str) -> str:
    return f"{USERS_PREFIX}{name}.json"


def check_name(name: str) -> str:
    """Refuse a user name outside ``[a-z0-9._-]`` (1–64, starting alphanumeric)."""
    if not _NAME.fullmatch(name):
        raise InvalidUser(
            "user names are 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def load_user(store: ObjectStore, name: str) -> User | None:
    """The user ``name`` (the admin included), or None."""
    if name == ADMIN_USER:
        admin = load_admin(store)
        if admin is None:
            return None
        return User(ADMIN_USER, Role.admin, admin.password_hash, admin.created_at, etag=admin.etag)
    if not _NAME.fullmatch(name):
        return None
    info = store.head(user_key(name))
    if info is None:
        return None
    document = read_json_record(store, user_key(name))
    return None if document is None else _user_from(name, document, info.etag)


def list_users(store: ObjectStore) -> list[User]:
    """Every user, the admin first once set up, then by name."""
    found = [load_user(store, ADMIN_USER)]
    for info in store.list(USERS_PREFIX):
        name = info.key[len(USERS_PREFIX) :].removesuffix(".json")
        if info.key.endswith(".json") and "/" not in name:
            found.append(load_user(store, name))
    return [user for user in found if user is not None]


def create_user(store: ObjectStore, name: str, password: str, role: Role, *, email: str = "") -> User:
    """Create a user once; ``already_exists`` if the name is taken (even concurrently)."""
    check_name(name)
    if name in RESERVED_NAMES:
        raise Conflict(f"the user name {name!r} is reserved")
    check_new_password(password)
    user = User(name, role, hash_password(password), now_iso(), email=email)
    try:
        etag = store.put(user_key(name), _document(user), content_type="application/json", if_none_match=True)
    except PreconditionFailed as exc:
        raise Conflict(f"the user {name!r} exists") from exc
    return _with_etag(user, etag)


def update_user(
    store: ObjectStore,
    name: str,
    *,
    role: Role | None = None,
    disabled: bool | None = None,
    password: str | None = None,
) -> User:
    """Change a user's role, disabled flag or password; the admin's role and access are permanent."""
    user = load_user(store, name)
    if user is None:
        raise UserNotFound(f"no user {name!r}")
    if password is not None:
        check_new_password(password)
    if name == ADMIN_USER:
        if (role is not None and role != Role.admin) or disabled:
            raise AdminIsPermanent("the admin account always keeps the admin role and cannot be disabled")
        if password is not None:
            replace_admin_password(store, hash_password(password))
        return load_user(store, name) or user
    changed = User(
        name,
        user.role if role is None else role,
        user.password_hash if password is None else hash_password(password),
        user.created_at,
        disabled=user.disabled if disabled is None else disabled,
        email=user.email,
    )
    etag = store.put(user_key(name), _document(changed), content_type="application/json", if_match=user.etag)
    return _with_etag(changed, etag)


def _user_from(name: str, document: dict[str, object], etag: str) -> User:
    # An unreadable record keeps an empty hash and the lowest role: it never verifies nor grants anything.
    role = document.get("role")
    password_hash = document.get("password_hash")
    created_at = document.get("created_at")
    email = document.get("email")
    return User(
        name,
        Role[role] if isinstance(role, str) and role in Role.__members__ else Role.auditor,
        password_hash if isinstance(password_hash, str) else "",
        created_at if isinstance(created_at, str) else "",
        disabled=document.get("disabled") is not False,
        email=email if isinstance(email, str) else "",
        etag=etag,
    )


def _document(user: User) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "user": user.name,
            "role": user.role.name,
            "password_hash": user.password_hash,
            "disabled": user.disabled,
            "email": user.email,
            "created_at": user.created_at,
        }
    ).encode()


def _with_etag(user: User, etag: str) -> User:
    return User(user.name, user.role, user.password_hash, user.created_at, user.disabled, user.email, etag)
