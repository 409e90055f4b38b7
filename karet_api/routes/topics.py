"""KalamDB's topic endpoints (seed 002) over Karet's events: ``POST /v1/api/topics/consume`` and ``/ack``.

Bearer auth and refusals in KalamDB's envelope, as ``/v1/api/sql``; see ``services.topics`` for offsets,
groups and delivery.
"""

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from karet_api.deps import InstanceDep, StoreDep
from karet_api.errors import KALAM_TOPIC_BY_ERROR
from karet_api.routes.sql_api import BearerActor, KalamRoute
from karet_api.schemas.common import Responses
from karet_api.schemas.query import SqlErrorResponse
from karet_api.schemas.topics import AckRequest, AckResponse, ConsumeRequest, TopicMessages
from karet_api.services import topics
from karet_api.services.access import PipelineFilter
from karet_api.services.feed import feed_hub


class TopicRoute(KalamRoute):
    kalam_codes = KALAM_TOPIC_BY_ERROR


router = APIRouter(prefix="/v1/api/topics", tags=["topics (KalamDB)"], route_class=TopicRoute)

_REFUSALS: Responses = {
    status: {"model": SqlErrorResponse, "description": description}
    for status, description in (
        (400, "BAD_REQUEST: a malformed body, or a partition other than 0"),
        (401, "UNAUTHORIZED: no bearer token (or session)"),
        (404, "TOPIC_NOT_FOUND: topics are `files`, `runs` and `tables`"),
        (413, "PAYLOAD_TOO_LARGE"),
    )
}


@router.post("/consume", response_model=TopicMessages, responses=_REFUSALS)
async def consume(
    body: ConsumeRequest, request: Request, stores: StoreDep, actor: BearerActor
) -> TopicMessages:
    """The messages after the group's acknowledged offset (or from `start` for a new group), waiting up to
    `timeout_seconds` for one; nothing is acknowledged by reading."""
    topics.check_topic(body.topic_id, body.partition_id)
    return await topics.consume(feed_hub(request.app), body, PipelineFilter(stores, actor))


@router.post("/ack", response_model=AckResponse, responses=_REFUSALS)
async def ack(body: AckRequest, instance: InstanceDep, actor: BearerActor) -> AckResponse:
    """Acknowledge the group's messages up to `upto_offset`, inclusive: its next consume starts after."""
    topics.check_topic(body.topic_id, body.partition_id)
    offset = await run_in_threadpool(
        topics.acknowledge, instance, body.topic_id, body.group_id, body.partition_id, body.upto_offset
    )
    return AckResponse(acknowledged_offset=offset)
