"""Routes of `/api/events`: the S3 event webhook (public, authenticated by a shared secret)."""

import io

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from karet_api.bearer import bearer_token
from karet_api.bodies import read_capped
from karet_api.deps import AutoRunsDep, PipelineIndexDep, SettingsDep
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import error_responses
from karet_api.schemas.events import EventsReceived
from karet_api.services import webhook

router = APIRouter(prefix="/api", tags=["events"], route_class=CappedJsonRoute)


@router.post(
    "/events/s3",
    response_model=EventsReceived,
    responses=error_responses(
        (400, "invalid_json: the body is not JSON"),
        (401, "unauthorized: missing or invalid webhook secret (always, when KARET_WEBHOOK_SECRET is unset)"),
        (413, "payload_too_large: body over 1 MiB"),
        (503, "s3_error: an object named by an event could not be looked up"),
    ),
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}
    },
)
async def s3_events(
    request: Request, settings: SettingsDep, index: PipelineIndexDep, runs: AutoRunsDep
) -> EventsReceived:
    """RustFS/MinIO/AWS `ObjectCreated` records: each pipeline reading a created key is scheduled once.

    The secret goes in `Authorization: Bearer`, `X-Webhook-Secret` or `?secret=`. Records of other
    buckets than the lake, keys outside every source prefix and keys under `clean/` are counted, not run.
    """
    presented = [
        bearer_token(request),
        request.headers.get("x-webhook-secret", ""),
        request.query_params.get("secret", ""),
    ]
    webhook.check_secret(settings.webhook_secret, presented)
    body = io.BytesIO()
    await read_capped(request, webhook.WEBHOOK_BODY_LIMIT, body)
    records = webhook.parse_records(body.getvalue())
    return await run_in_threadpool(webhook.handle_records, records, index, runs)
