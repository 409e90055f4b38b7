"""Models of users, tokens (KalamDB's shapes), pipeline members and the audit log."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from karet_api.schemas.auth import MAX_PASSWORD_LENGTH

RoleName = Literal["auditor", "engineer", "lead", "admin"]


class UserProfile(BaseModel):
    user: str
    role: RoleName
    disabled: bool = False
    email: str | None = None
    created_at: str


class UserCreate(BaseModel):
    user: str = Field(max_length=64, description="1-64 of a-z, 0-9, '.', '_', '-'")
    password: str = Field(max_length=MAX_PASSWORD_LENGTH, description="At least 8 characters")
    role: RoleName
    email: str = Field(default="", max_length=320)


class UserUpdate(BaseModel):
    role: RoleName | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, max_length=MAX_PASSWORD_LENGTH)


class UserList(BaseModel):
    users: list[UserProfile]


class TokenLogin(BaseModel):
    user: str = Field(max_length=64)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class TokenResponse(BaseModel):
    """KalamDB's login and refresh answer: the profile and a token pair (also set as cookies)."""

    user: UserProfile
    access_token: str
    refresh_token: str
    expires_in: int = Field(description="Seconds the access token lives")


class SetupRequest(BaseModel):
    user: str = Field(max_length=64, description="`admin`, or a second administrator to create")
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    root_password: str | None = Field(
        default=None, max_length=MAX_PASSWORD_LENGTH, description="The `admin` password (else `password`)"
    )
    email: str = Field(default="", max_length=320)


class SetupResponse(BaseModel):
    user: UserProfile
    message: str


class SetupStatusV1(BaseModel):
    needs_setup: bool
    message: str


class LogoutResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Logged out"


class Members(BaseModel):
    owner: str | None = Field(description="None while the pipeline is shared with every user")
    members: list[str]
    shared: bool


class MembersUpdate(BaseModel):
    members: list[str] = Field(max_length=1000)
    owner: str | None = Field(default=None, description="A new owner (leads and admins only)")


class AuditEntry(BaseModel):
    at: str
    event: str
    actor: str
    client: str
    details: dict[str, Any]


class AuditLog(BaseModel):
    events: list[AuditEntry]


class ResetRequest(BaseModel):
    confirm: str = Field(max_length=200, description="The instance's name (`KARET_INSTANCE_NAME`)")


class ResetResult(BaseModel):
    ok: bool = True
    deleted_objects: int


class ImportResult(BaseModel):
    ok: bool = True
    objects: int
    runs: int
