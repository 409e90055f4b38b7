"""Models of a pipeline's stored config."""

from pydantic import BaseModel, Field


class ConfigSaved(BaseModel):
    ok: bool = True
    etag: str = Field(description="The new ETag, also sent in the `ETag` header")
    version: int | None = Field(
        None, description="The config version recorded (also in `X-Karet-Config-Version`); none for a draft"
    )
    environment: str | None = Field(
        None, description="`production` when the save went live (`direct` mode), else `development`"
    )


class ConfigUpgrade(BaseModel):
    config: dict[str, object] = Field(description="The config with its lookups upgraded to dimensions")
    changed: bool = Field(description="`false` when the config had no `lookup_mappings` to upgrade")
    notes: list[str] = Field(description="What the upgrade cannot carry over, e.g. a lookup's children")
    saved: ConfigSaved | None = Field(None, description="The version recorded, with `?save=true`")
