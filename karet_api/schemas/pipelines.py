"""Models of the pipelines resource: list, create, delete, rename, import."""

from pydantic import BaseModel, ConfigDict, Field


class PipelineList(BaseModel):
    pipelines: list[str] = Field(description="Every slug with a `pipeline.json`, in key order")


class PipelineCreate(BaseModel):
    slug: str = Field(description="Sanitised: lower-case, `[a-z0-9-]`, at most 63 characters")
    template: str = Field("blank", description="`blank` or `spending`")


class PipelineCreated(BaseModel):
    ok: bool = True
    pipeline: str


class PipelineDeleted(BaseModel):
    ok: bool = True
    pipeline: str
    deleted: int = Field(description="Objects removed across the three buckets")


class PipelineRename(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    new_slug: str = Field(alias="newSlug")


class PipelineRenamed(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    ok: bool = True
    from_: str = Field(alias="from")
    to: str
    moved: int = Field(description="Objects copied to the new prefix")
