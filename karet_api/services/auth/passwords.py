"""Password hashes: argon2id, the 8-character minimum, and checks that cost the same with or without a hash.

A check against no hash (an unknown user, no admin yet) still hashes against a dummy of the same
parameters, so the time a login takes does not tell whether the account exists.
"""

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from karet_defs.errors import Unprocessable

MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash it still costs one verification (against a dummy)."""
    return matches_hash(password_hash or _dummy_hash(), password) and bool(password_hash)


def matches_hash(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; a malformed hash matches nothing."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, ValueError):  # ValueError covers a malformed stored hash
        return False


def check_new_password(password: str) -> None:
    """Refuse a password shorter than 8 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable(
            f"Password must be at least {MIN_PASSWORD_LENGTH} characters", code="invalid_password"
        )


@cache
def _dummy_hash() -> str:
    # Same parameters as real hashes, of a password nobody knows: checks without an admin cost the same.
    return _hasher.hash(secrets.token_urlsafe(32))
