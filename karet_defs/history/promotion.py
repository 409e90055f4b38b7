"""Promotion of config versions through environments, with approvals (DRLS semantics and codes).

development → qa is direct; qa → uat and uat → production open an approval request that a lead approves
or rejects. A lead may demote a version from UAT to QA (its pending request is rejected with it) and retire
the production version, which puts back the version it had replaced. Every transition is one
``update_history`` compare-and-swap that re-checks, on every attempt, the state the request was made
against: of two promotions of one version, or an approval racing a rejection, one wins and the other gets
a ``Conflict`` and changes nothing. A version reaching production is validated again first, and the live
config follows it (``sync_live``).
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

from karet_defs.catalog import list_slugs
from karet_defs.config.validate import load_pipeline
from karet_defs.errors import (
    ApprovalDecided,
    ApprovalNotFound,
    ApprovalPending,
    ConcurrentChange,
    InvalidTransition,
    MissingFields,
)
from karet_defs.history.records import (
    ApprovalRequest,
    ApprovalStatus,
    Comment,
    Environment,
    History,
    VersionRecord,
    now_iso,
)
from karet_defs.history.versions import read_document, read_history, sync_live, update_history
from karet_defs.store.base import Stores

NEXT_ENVIRONMENT: dict[Environment, Environment] = {"development": "qa", "qa": "uat", "uat": "production"}
NEEDS_APPROVAL: frozenset[Environment] = frozenset({"uat", "production"})
MAX_TEXT = 10_000

TransitionStatus = Literal["promoted", "pending_approval", "demoted", "retired", "approved", "rejected"]


@dataclass(frozen=True)
class Transition:
    status: TransitionStatus
    environment: Environment  # where the version is now (its current one while approval is pending)
    approval_request_id: str | None = None
    live_changed: bool = False


# ``expected`` is str: it comes from a request header, so it may name no environment at all.
def _moved(version: int, expected: str, now: Environment) -> ConcurrentChange:
    return ConcurrentChange(
        f"version {version} moved from {expected} to {now} under a concurrent request; nothing was changed",
        extra={"version": version, "environment": now},
    )


def promote(
    stores: Stores, slug: str, version: int, *, actor: str, expected: str | None = None
) -> Transition:
    """Move a version one environment on, or open the approval request that will. With ``expected`` (the
    environment the caller saw it in) a version that has moved on meanwhile is refused, not moved twice."""
    history, _ = read_history(stores.pipelines, slug)
    start = expected or history.get(version).environment

    def change(history: History) -> Transition:
        record = history.get(version)
        if record.environment != start:
            raise _moved(version, start, record.environment)
        pending = history.pending_for(version)
        if pending is not None:
            raise ApprovalPending(
                f"version {version} already awaits approval for {pending.to_environment} ({pending.id})",
                extra={"approval_request_id": pending.id},
            )
        target = NEXT_ENVIRONMENT.get(start)
        if target is None:
            raise InvalidTransition(f"version {version} is in {start}: there is no environment after it")
        if target in NEEDS_APPROVAL:
            request = ApprovalRequest(
                id=f"pr-{uuid.uuid4().hex[:16]}",
                version=version,
                from_environment=start,
                to_environment=target,
                status="pending",
                requested_by=actor,
                requested_at=now_iso(),
            )
            history.approvals.append(request)
            return Transition("pending_approval", start, request.id)
        record.environment = target
        return Transition("promoted", target)

    return update_history(stores.pipelines, slug, change)


def demote(stores: Stores, slug: str, version: int, *, actor: str) -> Transition:
    """UAT → QA; a pending request for production is rejected with it."""

    def change(history: History) -> Transition:
        record = history.get(version)
        if record.environment != "uat":
            raise InvalidTransition(f"version {version} is in {record.environment}: only UAT demotes to QA")
        pending = history.pending_for(version)
        if pending is not None:
            _decide(pending, "rejected", actor, f"version {version} was demoted to qa")
        record.environment = "qa"
        return Transition("demoted", "qa")

    return update_history(stores.pipelines, slug, change)


def retire(stores: Stores, slug: str, version: int, *, actor: str) -> Transition:
    """Take the production version out of production; the version it replaced goes back live."""
    history, _ = read_history(stores.pipelines, slug)
    record = history.get(version)
    fallback = history.find(record.replaced) if record.replaced is not None else None
    if record.environment == "production" and fallback is not None:
        load_pipeline(read_document(stores.pipelines, slug, fallback.version))

    def change(history: History) -> Transition:
        record = history.get(version)
        if record.environment != "production":
            raise InvalidTransition(f"version {version} is in {record.environment}, not in production")
        previous = history.find(record.replaced) if record.replaced is not None else None
        if previous is None or fallback is None or previous.version != fallback.version:
            raise InvalidTransition(
                f"version {version} replaced no version still kept: promote or save another one instead"
            )
        record.environment = "retired"
        previous.environment = "production"
        return Transition("retired", "retired")

    transition = update_history(stores.pipelines, slug, change)
    return Transition(transition.status, transition.environment, live_changed=sync_live(stores, slug))


def _decide(request: ApprovalRequest, status: ApprovalStatus, actor: str, reason: str | None) -> None:
    request.status = status
    request.decided_by = actor
    request.decided_at = now_iso()
    request.reason = reason


def _pending(history: History, request_id: str) -> ApprovalRequest:
    request = history.approval(request_id)
    if request.status != "pending":
        raise ApprovalDecided(
            f"approval request {request_id} was already {request.status} by {request.decided_by}",
            extra={"status": request.status},
        )
    return request


def approve(stores: Stores, request_id: str, *, actor: str, reason: str | None) -> tuple[str, Transition]:
    """Approve a pending request: its version moves to the target environment; return the pipeline too."""
    slug, history = find_request(stores, request_id)
    request = history.approval(request_id)
    if request.to_environment == "production":
        load_pipeline(read_document(stores.pipelines, slug, request.version))

    def change(history: History) -> Transition:
        request = _pending(history, request_id)
        record: VersionRecord = history.get(request.version)
        if record.environment != request.from_environment:
            raise _moved(record.version, request.from_environment, record.environment)
        _decide(request, "approved", actor, _text(reason))
        if request.to_environment == "production":
            history.make_production(record)
        else:
            record.environment = request.to_environment
        return Transition("approved", request.to_environment, request.id)

    transition = update_history(stores.pipelines, slug, change)
    if transition.environment == "production":
        transition = replace(transition, live_changed=sync_live(stores, slug))
    return slug, transition


def reject(stores: Stores, request_id: str, *, actor: str, reason: str | None) -> tuple[str, Transition]:
    """Reject a pending request (a reason is required); the version stays where it is."""
    why = _text(reason)
    if not why:
        raise MissingFields("a reason is required to reject a request", extra={"fields": ["reason"]})
    slug, _ = find_request(stores, request_id)

    def change(history: History) -> Transition:
        request = _pending(history, request_id)
        _decide(request, "rejected", actor, why)
        return Transition("rejected", history.get(request.version).environment, request.id)

    return slug, update_history(stores.pipelines, slug, change)


def add_comment(stores: Stores, request_id: str, *, actor: str, content: str | None) -> Comment:
    text = _text(content)
    if not text:
        raise MissingFields("a comment needs content", extra={"fields": ["content"]})
    slug, _ = find_request(stores, request_id)
    comment = Comment(id=f"c-{uuid.uuid4().hex[:16]}", author=actor, content=text, created_at=now_iso())

    def change(history: History) -> None:
        history.approval(request_id).comments.append(comment)

    update_history(stores.pipelines, slug, change)
    return comment


def _text(value: str | None) -> str | None:
    text = (value or "").strip()[:MAX_TEXT]
    return text or None


def all_requests(stores: Stores) -> Iterator[tuple[str, ApprovalRequest]]:
    """Every promotion request of every pipeline, with its pipeline's slug."""
    for slug in dict.fromkeys(list_slugs(stores)):
        history, _ = read_history(stores.pipelines, slug)
        for request in history.approvals:
            yield slug, request


def list_requests(stores: Stores, status: ApprovalStatus | None = None) -> list[tuple[str, ApprovalRequest]]:
    """Requests (of one status when given), newest first."""
    found = [(s, r) for s, r in all_requests(stores) if status is None or r.status == status]
    return sorted(found, key=lambda pair: pair[1].requested_at, reverse=True)


def find_request(stores: Stores, request_id: str) -> tuple[str, History]:
    """The pipeline holding a request, and its history."""
    for slug in dict.fromkeys(list_slugs(stores)):
        history, _ = read_history(stores.pipelines, slug)
        if any(a.id == request_id for a in history.approvals):
            return slug, history
    raise ApprovalNotFound(f"no approval request {request_id}", extra={"id": request_id})
