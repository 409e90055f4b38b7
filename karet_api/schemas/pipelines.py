"""Models of the pipelines resource: list, create, delete, rename, import."""

from pydantic import BaseModel, ConfigDict, Field

from karet_defs.history.records import PromotionMode


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


class PipelineUpdate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    new_slug: str | None = Field(None, alias="newSlug", description="Rename the pipeline to this slug")
    promotion: PromotionMode | None = Field(
        None,
        description="`direct`: saves go live (Karet's behaviour); `reviewed`: saves go to development and "
        "production changes only through promotion (needs the lead role)",
    )


class PipelineUpdated(BaseModel):
    """A rename answers `from`, `to` and `moved`; a change of promotion mode `pipeline` and `promotion`."""

    model_config = ConfigDict(populate_by_name=True)

    ok: bool = True
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    moved: int | None = Field(None, description="Objects copied to the new prefix")
    pipeline: str | None = None
    promotion: PromotionMode | None = None
