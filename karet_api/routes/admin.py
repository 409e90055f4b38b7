"""Routes of ``/api/admin``: users and their roles, the whole instance's export, import and reset (admins),
and the audit log (auditors and up)."""

import tempfile
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from karet_api.bodies import exceeds_limit, read_capped
from karet_api.deps import AuthDep, InstanceDep, ReloaderDep, SettingsDep, StoreDep
from karet_api.roles import Admin, Auditor
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.accounts import (
    AuditEntry,
    AuditLog,
    ImportResult,
    ResetRequest,
    ResetResult,
    UserCreate,
    UserList,
    UserProfile,
    UserUpdate,
)
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.services.accounts import audit, instance as instance_archive, ratelimit, users
from karet_api.services.accounts.users import Role
from karet_defs.errors import ConfirmMismatch

router = APIRouter(prefix="/api/admin", tags=["admin"], route_class=CappedJsonRoute)

# Small uploads stay in memory; bigger ones spill to disk instead of growing the process.
_SPOOL_BYTES = 8 * 1024 * 1024
_ERRORS = ((401, "not signed in"), (403, "forbidden: the caller's role is too low"), *STORE_ERRORS)


@router.post(
    "/users",
    response_model=UserProfile,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        *_ERRORS,
        (409, "already_exists: the user name is taken or reserved"),
        (422, "invalid_user (name), invalid_password (under 8 characters), invalid_request (role)"),
    ),
)
def create_user(body: UserCreate, request: Request, stores: StoreDep, actor: Admin) -> UserProfile:
    """Create a user with a password and one role."""
    user = users.create_user(stores.pipelines, body.user, body.password, Role[body.role], email=body.email)
    _audit(request, stores, "user_created", actor.name, user=user.name, role=user.role.name)
    return UserProfile.model_validate(user.profile())


@router.get("/users", response_model=UserList, responses=error_responses(*_ERRORS))
def list_users(stores: StoreDep, _: Admin) -> UserList:
    """Every user (the admin first), without password hashes."""
    return UserList(
        users=[UserProfile.model_validate(u.profile()) for u in users.list_users(stores.pipelines)]
    )


@router.patch(
    "/users/{user}",
    response_model=UserProfile,
    responses=error_responses(
        *_ERRORS,
        (404, "user_not_found"),
        (412, "etag_mismatch: the user was changed concurrently"),
        (422, "admin_is_permanent (the admin's role or access), invalid_password"),
    ),
)
def update_user(user: str, body: UserUpdate, request: Request, stores: StoreDep, actor: Admin) -> UserProfile:
    """Change a user's role, disable or enable them, or set a new password; effective on the next request."""
    before = users.load_user(stores.pipelines, user)
    role = Role[body.role] if body.role else None
    changed = users.update_user(
        stores.pipelines, user, role=role, disabled=body.disabled, password=body.password
    )
    if before is not None and changed.role != before.role:
        _audit(
            request,
            stores,
            "role_changed",
            actor.name,
            user=user,
            old=before.role.name,
            new=changed.role.name,
        )
    if body.disabled is not None or body.password is not None:
        _audit(
            request,
            stores,
            "user_changed",
            actor.name,
            user=user,
            disabled=changed.disabled,
            password_changed=body.password is not None,
        )
    return UserProfile.model_validate(changed.profile())


@router.get("/audit", response_model=AuditLog, responses=error_responses(*_ERRORS))
def read_audit(
    stores: StoreDep,
    _: Auditor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    event: Annotated[str | None, Query(description="Only events of this kind")] = None,
) -> AuditLog:
    """The newest audit events first: logins, failed logins, revocations, role changes, exports, resets."""
    events = audit.read(stores.pipelines, limit=limit, event=event)
    return AuditLog(
        events=[
            AuditEntry(at=e.at, event=e.event, actor=e.actor, client=e.client, details=e.details)
            for e in events
        ]
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "karet-instance.json, objects/<bucket>/<key> and runs/<run id>.jsonl",
        },
        **error_responses(*_ERRORS),
    },
)
def export_instance(
    request: Request, stores: StoreDep, instance: InstanceDep, settings: SettingsDep, actor: Admin
) -> StreamingResponse:
    """The whole instance as one ZIP, streamed as it is built: every object of every bucket (users with
    their hashes only), and the Dagster runs with their events."""
    _audit(request, stores, "export", actor.name)
    return StreamingResponse(
        instance_archive.iter_export(stores, instance, settings),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{settings.instance_name}.zip"'},
    )


@router.post(
    "/import",
    response_model=ImportResult,
    responses=error_responses(
        *_ERRORS,
        (409, "instance_not_empty: the instance has pipelines or runs (reset it first)"),
        (413, "zip_too_large"),
        (422, "invalid_zip, invalid_archive, invalid_entry_path, unsupported_format_version"),
    ),
    openapi_extra={
        "requestBody": {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "required": True,
        }
    },
)
async def import_instance(
    request: Request, stores: StoreDep, instance: InstanceDep, reloader: ReloaderDep, actor: Admin
) -> ImportResult:
    """Restore an exported instance into this empty one (streamed to a temporary file first)."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as body:
        too_large = exceeds_limit("zip_too_large")
        await read_capped(request, instance_archive.MAX_ARCHIVE_BYTES, body, too_large=too_large)
        restored = await run_in_threadpool(instance_archive.restore, stores, instance, body)
    reloader.request()
    await run_in_threadpool(_audit, request, stores, "import", actor.name, objects=restored.objects)
    return ImportResult(objects=restored.objects, runs=restored.runs)


@router.post(
    "/reset",
    response_model=ResetResult,
    responses=error_responses(*_ERRORS, (422, "confirm_mismatch: `confirm` is not the instance's name")),
)
def reset_instance(
    body: ResetRequest,
    request: Request,
    stores: StoreDep,
    instance: InstanceDep,
    settings: SettingsDep,
    reloader: ReloaderDep,
    auth: AuthDep,
    actor: Admin,
) -> ResetResult:
    """Delete every pipeline, object, user and run: the instance is back at needs-setup."""
    if body.confirm != settings.instance_name:
        raise ConfirmMismatch(
            "`confirm` is not the instance's name (KARET_INSTANCE_NAME); nothing was deleted"
        )
    deleted = instance_archive.reset(stores, instance, settings)
    auth.keys.forget()
    reloader.request()
    _audit(request, stores, "reset", actor.name, deleted_objects=deleted)  # the new log's first line
    return ResetResult(deleted_objects=deleted)


def _audit(request: Request, stores: StoreDep, event: str, actor: str, **details: object) -> None:
    audit.record(stores.pipelines, event, actor=actor, client=ratelimit.client_key(request), **details)
