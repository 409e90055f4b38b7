"""The records of a pipeline's config history: versions, promotion requests and their comments.

One ``History`` document per pipeline (``versions/index.json``) holds them all, so every change of state
(a save, a promotion, an approval, a comment) is one compare-and-swap of one object. Environments follow
DRLS: ``development`` → ``qa`` → ``uat`` → ``production``; a version leaves production as ``retired``.
At most one version is in production: the one whose document is the live ``pipeline.json``.
"""

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from karet_defs.errors import ApprovalNotFound, ConfigVersionNotFound

Environment = Literal["development", "qa", "uat", "production", "retired"]
PromotionMode = Literal["direct", "reviewed"]
ApprovalStatus = Literal["pending", "approved", "rejected"]
VersionSource = Literal["save", "revert", "template", "import", "baseline"]

MAX_VERSIONS = 100
MAX_DECIDED_APPROVALS = 100
HISTORY_FORMAT = 1


def now_iso() -> str:
    """Karet's timestamp format: ISO-8601 UTC with milliseconds and ``Z``."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class VersionRecord(BaseModel):
    version: int = Field(description="1, 2, …: one more than the newest version when it was saved")
    author: str
    note: str | None = None
    created_at: str
    environment: Environment
    etag: str = Field(description="MD5 of the stored document: the config's ETag while it is the live one")
    source: VersionSource = Field(description="What made it: a save, a revert, a template, an import")
    reverted_from: int | None = Field(None, description="The version a revert wrote forward")
    replaced: int | None = Field(
        None,
        description="The version that was in production before this one went there (retire returns to it)",
    )


class Comment(BaseModel):
    id: str
    author: str
    content: str
    created_at: str


class ApprovalRequest(BaseModel):
    id: str
    version: int
    from_environment: Environment
    to_environment: Environment
    status: ApprovalStatus
    requested_by: str
    requested_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    comments: list[Comment] = Field(default_factory=list)


class History(BaseModel):
    format: int = HISTORY_FORMAT
    promotion: PromotionMode = "direct"
    versions: list[VersionRecord] = Field(default_factory=list)  # ascending by number
    approvals: list[ApprovalRequest] = Field(default_factory=list)  # oldest first

    @property
    def latest(self) -> int:
        return self.versions[-1].version if self.versions else 0

    def find(self, version: int) -> VersionRecord | None:
        return next((v for v in self.versions if v.version == version), None)

    def get(self, version: int) -> VersionRecord:
        found = self.find(version)
        if found is None:
            raise ConfigVersionNotFound(
                f"version {version} is not in the history (the last {MAX_VERSIONS} are kept)",
                extra={"version": version},
            )
        return found

    def production(self) -> VersionRecord | None:
        return next((v for v in reversed(self.versions) if v.environment == "production"), None)

    def by_etag(self, etag: str) -> VersionRecord | None:
        """The version whose document has this MD5: the production one first, else the newest."""
        matches = [v for v in self.versions if v.etag == etag]
        return next((v for v in matches if v.environment == "production"), matches[-1] if matches else None)

    def approval(self, request_id: str) -> ApprovalRequest:
        found = next((a for a in self.approvals if a.id == request_id), None)
        if found is None:
            raise ApprovalNotFound(f"no approval request {request_id}", extra={"id": request_id})
        return found

    def pending_for(self, version: int) -> ApprovalRequest | None:
        return next((a for a in self.approvals if a.version == version and a.status == "pending"), None)

    def make_production(self, record: VersionRecord) -> None:
        """Put ``record`` in production; the version there before is retired and remembered as replaced."""
        current = self.production()
        if current is record:
            return
        if current is not None:
            current.environment = "retired"
            record.replaced = current.version
        record.environment = "production"

    def prune(self) -> list[int]:
        """Drop the oldest versions past ``MAX_VERSIONS`` (never one in QA, UAT or production, nor one a
        pending request or a retire would need) and old decided requests; return the versions dropped."""
        needed = {a.version for a in self.approvals if a.status == "pending"}
        needed |= {v.replaced for v in self.versions if v.environment == "production" and v.replaced}
        excess = len(self.versions) - MAX_VERSIONS
        dropped: list[int] = []
        for record in self.versions[:-1]:
            if len(dropped) >= excess:
                break
            if record.environment in ("development", "retired") and record.version not in needed:
                dropped.append(record.version)
        self.versions = [v for v in self.versions if v.version not in dropped]
        decided = [a for a in self.approvals if a.status != "pending"]
        if len(decided) > MAX_DECIDED_APPROVALS:
            stale = {a.id for a in decided[: len(decided) - MAX_DECIDED_APPROVALS]}
            self.approvals = [a for a in self.approvals if a.id not in stale]
        return dropped
