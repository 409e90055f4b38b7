"""The session secret, and the keys an app derives from it to sign session cookies and access tokens.

The secret is ``KARET_SESSION_SECRET``; when it is empty the local store generates one once into
``<data_dir>/.karet-secrets/session_secret``, while with S3 it is required and its absence answers
``500 server_misconfigured``. Keys are derived on first use, so a missing secret fails the requests that
need it rather than the app's start, and rotating the secret revokes every session and token.
"""

import os
import secrets
import tempfile
import threading
from pathlib import Path

from itsdangerous import URLSafeTimedSerializer

from karet_api.services.accounts import tokens
from karet_defs.errors import KaretError
from karet_defs.settings import Settings

SECRET_DIR_NAME = ".karet-secrets"
SECRET_FILE_NAME = "session_secret"
SESSION_SALT = "karet-session"


class SigningKeys:
    """One app's session signer and access-token key, derived from the session secret on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._session_signer: URLSafeTimedSerializer | None = None
        self._token_key: bytes | None = None

    def session_signer(self) -> URLSafeTimedSerializer:
        """The itsdangerous signer of ``karet_session`` cookies."""
        with self._lock:
            if self._session_signer is None:
                secret = resolve_session_secret(self._settings)
                self._session_signer = URLSafeTimedSerializer(secret, salt=SESSION_SALT)
            return self._session_signer

    def token_key(self) -> bytes:
        """The key that signs access and refresh tokens."""
        with self._lock:
            if self._token_key is None:
                self._token_key = tokens.signing_key(resolve_session_secret(self._settings))
            return self._token_key

    def forget(self) -> None:
        """Drop both keys, so the next request resolves the secret again (an instance reset deletes it)."""
        with self._lock:
            self._session_signer = None
            self._token_key = None


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
