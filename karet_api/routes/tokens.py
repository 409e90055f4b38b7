"""KalamDB's auth endpoints (seed 002) under ``/v1/api/auth``: login, refresh, logout, me, setup, status.

Every refusal is in KalamDB's envelope (``KalamRoute``); a rate limit is ``RATE_LIMIT_EXCEEDED`` with
``Retry-After``. Setup and status answer only on localhost unless ``KARET_ALLOW_REMOTE_SETUP=true``.
"""

import ipaddress
from typing import cast

from fastapi import APIRouter, Request, Response

from karet_api.deps import AuthDep, ClientAddress, SettingsDep, StoreDep, secure_cookies
from karet_api.routes.sql_api import BearerActor, KalamRoute
from karet_api.schemas.accounts import (
    LogoutResponse,
    RoleName,
    SetupRequest,
    SetupResponse,
    SetupStatusV1,
    TokenLogin,
    TokenResponse,
    UserProfile,
)
from karet_api.schemas.common import Responses
from karet_api.schemas.query import SqlErrorResponse
from karet_api.services.accounts import sessions
from karet_api.services.accounts.identity import ACCESS_COOKIE, REFRESH_COOKIE, presented_token
from karet_api.services.accounts.users import User, load_user
from karet_api.services.auth.admin import needs_setup
from karet_defs.errors import BadRequest, Conflict, LocalhostOnly, Unprocessable
from karet_defs.settings import Settings


class AuthRoute(KalamRoute):
    kalam_codes = {
        BadRequest: (400, "BAD_REQUEST"),
        Unprocessable: (400, "BAD_REQUEST"),
        Conflict: (409, "CONFLICT"),
    }


router = APIRouter(prefix="/v1/api/auth", tags=["auth (KalamDB)"], route_class=AuthRoute)


def _refusals(*pairs: tuple[int, str]) -> Responses:
    return {status: {"model": SqlErrorResponse, "description": text} for status, text in pairs}


_LIMITED = (429, "RATE_LIMIT_EXCEEDED: too many attempts (see Retry-After)")
_TOO_LARGE = (413, "PAYLOAD_TOO_LARGE: body over 1 MiB")
_BODY = ((400, "BAD_REQUEST: the body is not JSON of this shape"), _TOO_LARGE)
_LOCAL = (403, "PERMISSION_DENIED: not from localhost (`KARET_ALLOW_REMOTE_SETUP` is off)")
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


@router.post(
    "/login",
    response_model=TokenResponse,
    responses=_refusals(
        *_BODY, (401, "UNAUTHORIZED: wrong user or password, or a disabled account"), _LIMITED
    ),
)
def login(
    body: TokenLogin,
    request: Request,
    response: Response,
    auth: AuthDep,
    stores: StoreDep,
    client: ClientAddress,
) -> TokenResponse:
    """Sign in: the profile, an access token (15 min) and a refresh token (7 days); sets the cookies."""
    signed_in = sessions.login(auth, stores.pipelines, client, body.user, body.password)
    _set_cookies(response, sessions.token_cookies(signed_in.pair, secure=secure_cookies(request)))
    return _answer(signed_in)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    responses=_refusals(
        (401, "UNAUTHORIZED: no, expired or revoked refresh token; a spent one revokes its whole family"),
        _LIMITED,
    ),
)
def refresh(
    request: Request, response: Response, auth: AuthDep, stores: StoreDep, client: ClientAddress
) -> TokenResponse:
    """Rotate the pair of the refresh token (bearer, else the `karet_refresh` cookie)."""
    token = presented_token(request) or request.cookies.get(REFRESH_COOKIE, "")
    signed_in = sessions.refresh(auth, stores.pipelines, client, token)
    _set_cookies(response, sessions.token_cookies(signed_in.pair, secure=secure_cookies(request)))
    return _answer(signed_in)


@router.post("/logout", response_model=LogoutResponse)
def logout(
    request: Request, response: Response, auth: AuthDep, stores: StoreDep, client: ClientAddress
) -> LogoutResponse:
    """Revoke the presented token's family and clear the cookies."""
    sessions.logout(
        auth.keys,
        stores.pipelines,
        client,
        bearer=presented_token(request),
        access_cookie=request.cookies.get(ACCESS_COOKIE, ""),
        refresh_cookie=request.cookies.get(REFRESH_COOKIE, ""),
    )
    _set_cookies(response, sessions.cleared_cookies(secure=secure_cookies(request)))
    return LogoutResponse()


@router.get("/me", response_model=UserProfile, responses=_refusals((401, "UNAUTHORIZED: no valid token")))
def me(actor: BearerActor, stores: StoreDep) -> UserProfile:
    """The signed-in user's profile (the API key is the service `api`, an admin)."""
    user = load_user(stores.pipelines, actor.name)
    if user is None:
        # ``Role``'s member names are exactly the ``RoleName`` literals.
        return UserProfile(user=actor.name, role=cast(RoleName, actor.role.name), created_at="")
    return UserProfile.model_validate(user.profile())


@router.post(
    "/setup",
    response_model=SetupResponse,
    responses=_refusals(
        _TOO_LARGE,
        (400, "BAD_REQUEST: invalid_password, invalid_user, or a body not of this shape"),
        _LOCAL,
        (409, "CONFLICT: already_initialized"),
    ),
)
def setup(
    body: SetupRequest,
    request: Request,
    settings: SettingsDep,
    auth: AuthDep,
    stores: StoreDep,
    client: ClientAddress,
) -> SetupResponse:
    """First bootstrap only: set the admin's password and create the given administrator; no login."""
    _ensure_local(request, settings)
    user = sessions.setup(
        auth.keys,
        stores.pipelines,
        client,
        name=body.user,
        password=body.password,
        root_password=body.root_password,
        email=body.email,
    )
    return SetupResponse(user=UserProfile.model_validate(user.profile()), message="Setup complete; log in.")


@router.get("/status", response_model=SetupStatusV1, responses=_refusals(_LOCAL))
def status(request: Request, settings: SettingsDep, stores: StoreDep) -> SetupStatusV1:
    """Whether the instance still needs its initial setup."""
    _ensure_local(request, settings)
    if needs_setup(stores.pipelines):
        return SetupStatusV1(
            needs_setup=True, message="Server requires initial setup: POST /v1/api/auth/setup."
        )
    return SetupStatusV1(needs_setup=False, message="Server is set up.")


def _answer(signed_in: sessions.SignedIn) -> TokenResponse:
    user: User = signed_in.user
    return TokenResponse(
        user=UserProfile.model_validate(user.profile()),
        access_token=signed_in.pair.access_token,
        refresh_token=signed_in.pair.refresh_token,
        expires_in=signed_in.pair.expires_in,
    )


def _set_cookies(response: Response, cookies: list[str]) -> None:
    for cookie in cookies:
        response.headers.append("set-cookie", cookie)


def _is_local(request: Request) -> bool:
    """Whether the request comes from this host itself: a loopback peer, not relayed by a proxy."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host) in _LOOPBACK
    except ValueError:
        return host == "localhost"


def _ensure_local(request: Request, settings: Settings) -> None:
    """Refuse (403) a setup or status request from another host, unless remote setup is allowed."""
    if not (settings.allow_remote_setup or _is_local(request)):
        raise LocalhostOnly("setup and status answer only on localhost")
