"""Approval requests for promotions (DRLS): list, read, approve, reject, comment; pending notifications."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from karet_api.deps import ReloaderDep, SettingsDep, StoreDep
from karet_api.roles import Engineer, Lead
from karet_api.routes.config_versions import LiveWatch, version_detail
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, error_responses
from karet_api.schemas.history import (
    ApprovalDetail,
    ApprovalList,
    ApprovalView,
    CommentBody,
    CommentList,
    DecisionBody,
    PendingApprovals,
    TransitionResult,
)
from karet_defs.history import promotion
from karet_defs.history.impact import impact_if_run
from karet_defs.history.records import ApprovalRequest, ApprovalStatus, Comment
from karet_defs.query.engine import QueryLimits

router = APIRouter(prefix="/api", tags=["approvals"], route_class=CappedJsonRoute)

_ERRORS = ((401, "not signed in"), (403, "forbidden: the caller's role is too low"))
_MISSING = (404, "approval_not_found")
_DECIDED = (
    409,
    "approval_decided: approved or rejected by an earlier or concurrent request; concurrent_change",
)


def _view(slug: str, request: ApprovalRequest) -> ApprovalView:
    return ApprovalView(**request.model_dump(), pipeline=slug)


@router.get("/approvals", response_model=ApprovalList, responses=error_responses(*_ERRORS, *STORE_ERRORS))
def list_approvals(
    stores: StoreDep,
    _: Lead,
    status: Annotated[ApprovalStatus | None, Query(description="pending, approved or rejected")] = None,
) -> ApprovalList:
    """Promotion requests of every pipeline, newest first."""
    return ApprovalList(approvals=[_view(s, r) for s, r in promotion.list_requests(stores, status)])


@router.get(
    "/approvals/{request_id}",
    response_model=ApprovalDetail,
    responses=error_responses(*_ERRORS, _MISSING, *STORE_ERRORS),
)
def read_approval(request_id: str, stores: StoreDep, settings: SettingsDep, _: Lead) -> ApprovalDetail:
    """One request with the version it is about (record and document) and what it does to the data (its
    sandbox tables compared with production's, once a sandbox run of it exists)."""
    slug, history = promotion.find_request(stores, request_id)
    request = history.approval(request_id)
    return ApprovalDetail(
        **_view(slug, request).model_dump(),
        snapshot=version_detail(stores, slug, request.version),
        impact=impact_if_run(stores, slug, request.version, QueryLimits.from_settings(settings)),
    )


def _decision(transition: promotion.Transition, request_id: str) -> JSONResponse:
    result = TransitionResult(
        status=transition.status, environment=transition.environment, approval_request_id=request_id
    )
    return JSONResponse(result.model_dump(mode="json"))


@router.post(
    "/approvals/{request_id}/approve",
    response_model=TransitionResult,
    responses=error_responses(
        *_ERRORS, _MISSING, _DECIDED, (422, "the version no longer validates (to production)"), *STORE_ERRORS
    ),
)
def approve(
    request_id: str,
    stores: StoreDep,
    reloader: ReloaderDep,
    actor: Lead,
    body: DecisionBody | None = None,
) -> JSONResponse:
    """Approve a pending request: the version moves to the target environment (production: it goes live)."""
    slug, _history = promotion.find_request(stores, request_id)
    watch = LiveWatch(stores, slug, reloader)
    _slug, transition = promotion.approve(
        stores, request_id, actor=actor.name, reason=body.reason if body else None
    )
    watch.done()
    return _decision(transition, request_id)


@router.post(
    "/approvals/{request_id}/reject",
    response_model=TransitionResult,
    responses=error_responses(
        *_ERRORS, _MISSING, _DECIDED, (422, "missing_fields: a reason is required"), *STORE_ERRORS
    ),
)
def reject(request_id: str, stores: StoreDep, actor: Lead, body: DecisionBody | None = None) -> JSONResponse:
    """Reject a pending request with a reason; the version stays where it is."""
    _slug, transition = promotion.reject(
        stores, request_id, actor=actor.name, reason=body.reason if body else None
    )
    return _decision(transition, request_id)


@router.get(
    "/approvals/{request_id}/comments",
    response_model=CommentList,
    responses=error_responses(*_ERRORS, _MISSING, *STORE_ERRORS),
)
def list_comments(request_id: str, stores: StoreDep, _: Engineer) -> CommentList:
    """The request's comments, oldest first."""
    _slug, history = promotion.find_request(stores, request_id)
    return CommentList(comments=history.approval(request_id).comments)


@router.post(
    "/approvals/{request_id}/comments",
    response_model=Comment,
    status_code=201,
    responses=error_responses(
        *_ERRORS, _MISSING, (422, "missing_fields: a comment needs content"), *STORE_ERRORS
    ),
)
def add_comment(request_id: str, body: CommentBody, stores: StoreDep, actor: Engineer) -> Comment:
    """Add a comment to a request (decided ones too: the discussion may go on)."""
    return promotion.add_comment(stores, request_id, actor=actor.name, content=body.content)


@router.get(
    "/notifications/pending-approvals",
    response_model=PendingApprovals,
    responses=error_responses(*_ERRORS, *STORE_ERRORS),
)
def pending_approvals(stores: StoreDep, _: Lead) -> PendingApprovals:
    """How many requests await a decision, and which."""
    requests = [_view(s, r) for s, r in promotion.list_requests(stores, "pending")]
    return PendingApprovals(count=len(requests), requests=requests)
