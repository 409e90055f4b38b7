"""Models of a pipeline's stored config."""

from pydantic import BaseModel, Field


class ConfigSaved(BaseModel):
    ok: bool = True
    etag: str = Field(description="The new ETag, also sent in the `ETag` header")
