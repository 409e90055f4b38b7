"""Rate limits per user and per client address on login, token refresh, SQL and writes (``limits``).

Moving windows, kept in memory on one host or in Redis (``KARET_RATE_LIMIT_STORAGE=redis://…``) when the API
runs on several, so every process counts against the same windows. Login keeps Karet's shape: a burst of 5
attempts per client in 15 s (plus a sustained cap), the right password included, reset by a success; a
looser cap per user name, so spraying one account from many addresses is slow yet one attacker cannot lock
its owner out; and at most 2 password verifications at once per process, since argon2 costs 64 MiB and a
core each. The API key's service identity is exempt from the SQL and write limits: it is the operator's own
automation.
"""

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from karet_defs.errors import RateLimited
from karet_defs.settings import Settings

LOGIN_MESSAGE = "Too many login attempts; wait before retrying."
LOGIN_MAX_CONCURRENT = 2
BUSY_RETRY_AFTER = 2
_NAMESPACE = "karet"


class Limiter:
    """The app's rate limits over one ``limits`` storage."""

    def __init__(self, settings: Settings, *, max_concurrent: int = LOGIN_MAX_CONCURRENT) -> None:
        self.storage = storage_from_string(settings.rate_limit_storage)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.login = parse_many(settings.rate_limit_login)
        self.login_user = parse_many(settings.rate_limit_login_user)
        self.refresh = parse_many(settings.rate_limit_refresh)
        self.sql = parse_many(settings.rate_limit_sql)
        self.writes = parse_many(settings.rate_limit_writes)
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def hit_login(self, client: str, user: str | None = None) -> None:
        """Spend one login attempt of the client address (and of the user name, when one is given)."""
        self._hit(self.login, [("login-client", client)], LOGIN_MESSAGE)
        if user:
            self._hit(self.login_user, [("login-user", user)], LOGIN_MESSAGE)

    def clear_login(self, client: str, user: str | None = None) -> None:
        """Forget the login attempts of a client address (and user) after a success."""
        for item in self.login:
            self.strategy.clear(item, _NAMESPACE, "login-client", client)
        if user:
            for item in self.login_user:
                self.strategy.clear(item, _NAMESPACE, "login-user", user)

    def hit_refresh(self, client: str) -> None:
        self._hit(self.refresh, [("refresh-client", client)], "Too many token refreshes.")

    def hit_sql(self, client: str, user: str | None) -> None:
        """Spend one query of ``user`` and of the client address (``None``: the service identity, exempt)."""
        self._hit_caller(self.sql, "sql", client, user, "Too many SQL queries; wait before retrying.")

    def hit_writes(self, client: str, user: str | None) -> None:
        """Spend one write of ``user`` and of the client address (``None``: the service identity, exempt)."""
        self._hit_caller(self.writes, "write", client, user, "Too many changes; wait before retrying.")

    @contextmanager
    def verification_slot(self) -> Iterator[None]:
        """Hold one of the verification slots, or raise ``server_busy`` when none is free."""
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

    def _hit_caller(
        self, items: list[RateLimitItem], kind: str, client: str, user: str | None, message: str
    ) -> None:
        if user is None:
            return
        self._hit(items, [(f"{kind}-user", user), (f"{kind}-client", client)], message)

    def _hit(self, items: list[RateLimitItem], scopes: list[tuple[str, str]], message: str) -> None:
        for scope, who in scopes:
            for item in items:
                if not self.strategy.hit(item, _NAMESPACE, scope, who):
                    reset = self.strategy.get_window_stats(item, _NAMESPACE, scope, who).reset_time
                    raise RateLimited(message, retry_after=max(1, math.ceil(reset - time.time())))


def client_key(request: Request) -> str:
    """The client address: the first ``X-Forwarded-For`` hop, else the peer address, else ``unknown``."""
    first_hop = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    if first_hop:
        return first_hop
    return request.client.host if request.client and request.client.host else "unknown"
