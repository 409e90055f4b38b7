"""Server-sent events of job changes: ``GET /api/p/<slug>/jobs/events`` and ``GET /api/events``.

Each event is one job change (``queued``, ``started``, ``progress`` at most every 500 ms, ``completed``,
``failed``) with ``id`` = the storage id of the Dagster event it comes from, so a client that reconnects with
``Last-Event-ID`` (browsers' ``EventSource`` does it by itself) gets what it missed and nothing twice.
"""

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from karet_api.deps import CurrentUser, StoreDep
from karet_api.schemas.common import Responses, error_responses
from karet_api.services.access import PipelineFilter
from karet_api.services.feed import Accept, feed_hub
from karet_api.services.jobs import iso_utc
from karet_defs.errors import BadRequest, NotFound
from karet_defs.orchestration.feed import JOBS, FeedEvent

PING_SECONDS = 15
_STREAM: Responses = {
    200: {
        "description": "`text/event-stream`: `id` (storage id), `event` (queued, started, progress, "
        "completed, failed) and `data`, a JSON object with `type`, `offset`, `timestamp`, `job_id`, "
        "`pipeline`, `trigger` and, by type, `status`, `progress`, counters and `error`",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}

router = APIRouter(prefix="/api", tags=["jobs"])

LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", description="Resume after this event id (a storage id)"),
]


@router.get(
    "/p/{slug}/jobs/events",
    response_class=EventSourceResponse,
    responses={
        **_STREAM,
        **error_responses(
            (400, "bad_request: Last-Event-ID is not an id"),
            (401, "not signed in"),
            (404, "not_found: a pipeline the caller may not see"),
        ),
    },
)
async def pipeline_job_events(
    slug: str, request: Request, stores: StoreDep, actor: CurrentUser, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """Every job change of the pipeline, live; with `Last-Event-ID`, first what came after that event."""
    visible = PipelineFilter(stores, actor)
    if not await visible.check(slug):
        raise NotFound(f"pipeline {slug!r} not found")
    return _stream(request, lambda e: e.topic == JOBS and e.pipeline == slug, visible, last_event_id)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={
        **_STREAM,
        **error_responses((400, "bad_request: Last-Event-ID is not an id"), (401, "not signed in")),
    },
)
async def all_job_events(
    request: Request, stores: StoreDep, actor: CurrentUser, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """Every job change of every pipeline the caller may see, as `/api/p/<slug>/jobs/events`."""
    return _stream(request, lambda e: e.topic == JOBS, PipelineFilter(stores, actor), last_event_id)


def _stream(
    request: Request, accept: Accept, visible: PipelineFilter, last_event_id: str | None
) -> EventSourceResponse:
    after = _event_id(last_event_id)
    return EventSourceResponse(_events(request, accept, visible, after), ping=PING_SECONDS)


async def _events(
    request: Request, accept: Accept, visible: PipelineFilter, after: int | None
) -> AsyncIterator[ServerSentEvent]:
    hub = feed_hub(request.app)
    async with hub.subscribe(accept) as subscription:
        if after is not None:
            async for event in hub.replay(after, subscription.start, accept):
                if await visible.check(event.pipeline):
                    yield _sse(event)
        async for event in subscription:
            if (after is None or event.offset > after) and await visible.check(event.pipeline):
                yield _sse(event)


def _sse(event: FeedEvent) -> ServerSentEvent:
    data = {
        "type": event.kind,
        "offset": event.offset,
        "timestamp": iso_utc(event.timestamp),
        **event.payload,
    }
    return ServerSentEvent(data=json.dumps(data), event=event.kind, id=str(event.offset))


def _event_id(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit():
        raise BadRequest(f"Last-Event-ID must be an event id (a storage id), not {value!r}")
    return int(value)
