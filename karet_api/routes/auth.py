"""Routes of `/api/auth`: one-shot setup, login and logout, the session check and the password change."""

from fastapi import APIRouter, Depends, Request, Response

from karet_api.deps import AuthDep, ClientAddress, SettingsDep, StoreDep, require_user, secure_cookies
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.auth import PasswordBody, PasswordChange, SessionStatus, SetupStatus
from karet_api.schemas.common import STORE_ERRORS, Ok, error_responses
from karet_api.services.accounts import audit, identity, sessions
from karet_api.services.auth import admin, cookies
from karet_api.services.auth.state import AuthState

router = APIRouter(prefix="/api", tags=["auth"], route_class=CappedJsonRoute)

_MISCONFIGURED = (500, "server_misconfigured: KARET_SESSION_SECRET is not set (S3 store)")
_THROTTLED = (
    429,
    "rate_limited (Retry-After: seconds until the next attempt) or server_busy (Retry-After: 2)",
)


@router.get(
    "/auth/setup",
    response_model=SetupStatus,
    responses=error_responses(*STORE_ERRORS),
)
def setup_status(stores: StoreDep) -> SetupStatus:
    """Whether the admin password still has to be set."""
    return SetupStatus(needs_setup=admin.needs_setup(stores.pipelines))


@router.post(
    "/auth/setup",
    response_model=Ok,
    responses=error_responses(
        (409, "already_initialized: the admin exists"),
        (422, "invalid_password: shorter than 8 characters"),
        _MISCONFIGURED,
    ),
)
def setup(
    request: Request,
    response: Response,
    auth: AuthDep,
    stores: StoreDep,
    client: ClientAddress,
    body: PasswordBody | None = None,
) -> Ok:
    """Set the admin password once, and log in (sets the session cookie)."""
    password = body.password if body and body.password else ""
    admin.create_admin(auth.keys, stores.pipelines, password)
    audit.record(stores.pipelines, "setup", actor=admin.ADMIN_USER, client=client)
    _start_session(request, response, auth)
    return Ok()


@router.post(
    "/auth/login",
    response_model=Ok,
    responses=error_responses(
        (401, "invalid_credentials: missing or wrong password"),
        (422, "invalid_request: the body is not `{password: string}`"),
        _THROTTLED,
        _MISCONFIGURED,
    ),
)
def login(
    request: Request,
    response: Response,
    auth: AuthDep,
    stores: StoreDep,
    client: ClientAddress,
    body: PasswordBody | None = None,
) -> Ok:
    """Log in with the admin password; sets the 7-day `karet_session` cookie."""
    admin.login(auth, stores.pipelines, client, body.password if body else None)
    _start_session(request, response, auth)
    return Ok()


@router.post("/auth/logout", response_model=Ok)
def logout(request: Request, response: Response) -> Ok:
    """Drop the session cookie."""
    response.headers.append("set-cookie", cookies.expired_session_cookie(secure=secure_cookies(request)))
    return Ok()


@router.get(
    "/auth/me",
    response_model=SessionStatus,
    response_model_exclude_none=True,
    responses={
        401: {"model": SessionStatus, "description": 'not logged in: `{"authenticated": false}`'},
        **error_responses(_MISCONFIGURED),
    },
)
def me(
    request: Request, response: Response, settings: SettingsDep, auth: AuthDep, stores: StoreDep
) -> SessionStatus:
    """Whether the request carries a valid session, access token or the API key; renews an access token
    that is near its end, so an open page stays signed in and an idle one does not."""
    actor = identity.resolve(request, settings, stores.pipelines)
    if actor is None:
        response.status_code = 401
        return SessionStatus(authenticated=False)
    if actor.token is None:
        return SessionStatus(authenticated=True)
    status = SessionStatus(authenticated=True, user=actor.name, role=actor.role.name)
    renewed = sessions.renew(auth.keys, stores.pipelines, actor)
    if renewed is not None:
        status.access_token, status.expires_in = renewed.access_token, renewed.expires_in
        if actor.token_from_cookie:
            for cookie in sessions.token_cookies(renewed, secure=secure_cookies(request)):
                response.headers.append("set-cookie", cookie)
    return status


@router.patch(
    "/auth/me",
    response_model=Ok,
    dependencies=[Depends(require_user)],
    responses=error_responses(
        (400, "missing_current_password or missing_new_password"),
        (401, "unauthorized (no valid session) or wrong_password"),
        (404, "no_admin: setup has not been done"),
        (412, "etag_mismatch: the password was changed concurrently"),
        (422, "invalid_password: the new password is shorter than 8 characters"),
        _THROTTLED,
        _MISCONFIGURED,
    ),
)
def change_password(
    body: PasswordChange,
    request: Request,
    response: Response,
    auth: AuthDep,
    stores: StoreDep,
    client: ClientAddress,
) -> Ok:
    """Change the admin password; re-issues the session cookie."""
    admin.change_password(auth, stores.pipelines, client, body.current_password, body.new_password)
    _start_session(request, response, auth)
    return Ok()


def _start_session(request: Request, response: Response, auth: AuthState) -> None:
    response.headers.append("set-cookie", cookies.session_cookie(auth.keys, secure=secure_cookies(request)))
