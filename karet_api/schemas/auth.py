"""Models of the auth endpoints, in Karet's camelCase field names."""

from pydantic import BaseModel, ConfigDict, Field


class SetupStatus(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    needs_setup: bool = Field(alias="needsSetup", description="True until the admin password is set")


class PasswordBody(BaseModel):
    password: str | None = Field(default=None, description="The admin password")


class PasswordChange(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    current_password: str | None = Field(default=None, alias="currentPassword")
    new_password: str | None = Field(default=None, alias="newPassword", description="At least 8 characters")


class SessionStatus(BaseModel):
    authenticated: bool
