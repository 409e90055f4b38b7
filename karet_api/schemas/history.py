"""Models of config history, promotion, approvals and portable versions (DRLS shapes where it names them)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from karet_defs.history.impact import Impact
from karet_defs.history.records import ApprovalRequest, Comment, Environment, PromotionMode, VersionRecord


class VersionList(BaseModel):
    pipeline: str
    promotion: PromotionMode = Field(
        description="`direct` (saves go live) or `reviewed` (saves go to development)"
    )
    live_version: int | None = Field(description="The version the live config is (what runs read)")
    versions: list[VersionRecord] = Field(description="Newest first; the last 100 are kept")


class VersionDetail(VersionRecord):
    pipeline: dict[str, Any] = Field(description="The version's config document")


class NoteBody(BaseModel):
    note: str | None = Field(None, description="Why; `X-Karet-Note` says the same and wins")


class Reverted(BaseModel):
    ok: bool = True
    etag: str
    version: VersionRecord


class TransitionResult(BaseModel):
    status: Literal["promoted", "pending_approval", "demoted", "retired", "approved", "rejected"]
    environment: Environment
    approval_request_id: str | None = None


class ApprovalView(ApprovalRequest):
    pipeline: str


class ApprovalDetail(ApprovalView):
    snapshot: VersionDetail = Field(description="The version the request is about, with its document")
    impact: Impact | None = Field(
        description="The version's sandbox tables compared with production's; null until a sandbox run of "
        "the version committed them"
    )


class ApprovalList(BaseModel):
    approvals: list[ApprovalView]


class PendingApprovals(BaseModel):
    count: int
    requests: list[ApprovalView]


class DecisionBody(BaseModel):
    reason: str | None = None


class CommentBody(BaseModel):
    content: str | None = None


class CommentList(BaseModel):
    comments: list[Comment]


class PortableVersion(BaseModel):
    format_version: int
    name: str
    description: str
    version: int
    pipeline: dict[str, Any]
    exported_at: str


class SandboxRunStarted(BaseModel):
    ok: bool = True
    job_id: str = Field(description="The run's id: it shows in `GET /api/p/<slug>/jobs` with `environment`")
    environment: Environment = Field(description="Whose sandbox the run writes: the version's own")
    version: int


class VersionImported(BaseModel):
    ok: bool = True
    pipeline: str
    created: bool = Field(description="True when the pipeline was created; false: a new development version")
    version: VersionRecord
