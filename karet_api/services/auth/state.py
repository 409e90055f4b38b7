"""What one app keeps for authentication between requests, built once by ``create_app``: the keys derived
from the session secret and the rate limiter of logins, refreshes, SQL and writes."""

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from karet_api.services.accounts.ratelimit import Limiter
from karet_api.services.auth.secret import SigningKeys
from karet_defs.settings import Settings


@dataclass(frozen=True)
class AuthState:
    keys: SigningKeys
    limiter: Limiter

    @classmethod
    def build(cls, settings: Settings) -> "AuthState":
        return cls(SigningKeys(settings), Limiter(settings))


def auth_of(connection: HTTPConnection) -> AuthState:
    """The ``AuthState`` of the app serving this request or socket."""
    state: AuthState = connection.app.state.auth
    return state
