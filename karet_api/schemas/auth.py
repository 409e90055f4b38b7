"""Models of the auth endpoints, in Karet's camelCase field names."""

from pydantic import BaseModel, ConfigDict, Field

# argon2 hashes whatever it is given: a megabyte-long guess must not cost the server a megabyte of hashing.
MAX_PASSWORD_LENGTH = 1024


class SetupStatus(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    needs_setup: bool = Field(alias="needsSetup", description="True until the admin password is set")


class PasswordBody(BaseModel):
    password: str | None = Field(
        default=None, max_length=MAX_PASSWORD_LENGTH, description="The admin password"
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    current_password: str | None = Field(
        default=None, alias="currentPassword", max_length=MAX_PASSWORD_LENGTH
    )
    new_password: str | None = Field(
        default=None, alias="newPassword", max_length=MAX_PASSWORD_LENGTH, description="At least 8 characters"
    )


class SessionStatus(BaseModel):
    """Karet's ``{"authenticated"}``; a caller signed in with an access token also learns who it is, and
    gets a renewed token when its own has under 5 minutes left (also set as the ``karet_token`` cookie)."""

    authenticated: bool
    user: str | None = None
    role: str | None = None
    access_token: str | None = None
    expires_in: int | None = None
