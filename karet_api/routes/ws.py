"""``GET /v1/ws``: Karet's events pushed over a WebSocket, subscribed to by topic.

Authentication, as on ``/v1/api``: a bearer (``KARET_API_KEY`` or an access token) or a session cookie on
the upgrade request; a client that cannot set headers (a browser's ``WebSocket``) sends ``{"type":
"authenticate", "token": "<bearer>"}`` as its first message within ``AUTH_SECONDS``. A token in the URL is
not read, on purpose: URLs end up in access logs. A refused client is closed with code 1008. Events of
pipelines the caller may not see are never sent (``services.access``).

Then the client sends ``{"type": "subscribe", "topics": ["jobs", "runs", ...], "pipelines": ["spending"]}``
(``pipelines`` optional: all it may see) and ``{"type": "unsubscribe", "topics": [...]}``; the server pushes
``{"type": "event", "topic", "op", "offset", "pipeline", "timestamp", "payload"}`` live, each once. Topics are
``jobs`` (the job changes of the SSE streams) and the consumable ``files``, ``runs`` and ``tables``. The push
is live only: a consumer that must not miss events across disconnects uses ``/v1/api/topics/consume``.
"""

from typing import Any, cast

import anyio
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect

from karet_api.services.access import PipelineFilter
from karet_api.services.accounts import identity
from karet_api.services.accounts.identity import Actor
from karet_api.services.feed import Subscription, feed_hub
from karet_defs.orchestration.feed import JOBS, TOPICS, FeedEvent

AUTH_SECONDS = 10.0
WS_TOPICS = (JOBS, *TOPICS)
POLICY_VIOLATION = 1008
GOING_AWAY = 1001

router = APIRouter(tags=["topics (KalamDB)"])


@router.websocket("/v1/ws")
async def event_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    actor = _resolve(websocket, {}) or await _first_message_actor(websocket)
    if actor is None:
        await websocket.close(code=POLICY_VIOLATION, reason="a bearer token is required")
        return
    await websocket.send_json({"type": "authenticated", "user": actor.name})
    topics: set[str] = set()
    pipelines: set[str] = set()

    def accept(event: FeedEvent) -> bool:
        return event.topic in topics and (not pipelines or event.pipeline in pipelines)

    visible = PipelineFilter(websocket.app.state.stores, actor)
    async with feed_hub(websocket.app).subscribe(accept) as subscription, anyio.create_task_group() as tasks:
        tasks.start_soon(_push, websocket, subscription, visible, tasks.cancel_scope)
        await _listen(websocket, topics, pipelines)
        tasks.cancel_scope.cancel()


async def _listen(websocket: WebSocket, topics: set[str], pipelines: set[str]) -> None:
    """Apply the client's (un)subscriptions until it goes."""
    while True:
        try:
            message = await websocket.receive_json()
        except WebSocketDisconnect:
            return
        except ValueError:
            await _error(websocket, "invalid_message", "messages are JSON objects")
            continue
        kind = message.get("type") if isinstance(message, dict) else None
        named = message.get("topics", []) if isinstance(message, dict) else []
        if kind not in ("subscribe", "unsubscribe") or not isinstance(named, list):
            await _error(websocket, "invalid_message", "send {type: subscribe|unsubscribe, topics: [...]}")
            continue
        unknown = [t for t in named if t not in WS_TOPICS]
        if unknown:
            await _error(
                websocket, "topic_not_found", f"no topic {unknown[0]!r}; topics are {list(WS_TOPICS)}"
            )
            continue
        if kind == "subscribe":
            topics.update(named)
            pipelines.update(p for p in message.get("pipelines") or [] if isinstance(p, str))
        else:
            topics.difference_update(named)
        await websocket.send_json(
            {"type": f"{kind}d", "topics": sorted(topics), "pipelines": sorted(pipelines)}
        )


async def _push(
    websocket: WebSocket, subscription: Subscription, visible: PipelineFilter, scope: anyio.CancelScope
) -> None:
    async for event in subscription:
        if not await visible.check(event.pipeline):
            continue
        await websocket.send_json(
            {
                "type": "event",
                "topic": event.topic,
                "op": event.kind,
                "offset": event.offset,
                "pipeline": event.pipeline,
                "timestamp": int(event.timestamp * 1000),
                "payload": event.payload,
            }
        )
    # The hub dropped it (too far behind) or is shutting down.
    await websocket.close(code=GOING_AWAY)
    scope.cancel()


async def _error(websocket: WebSocket, code: str, message: str) -> None:
    await websocket.send_json({"type": "error", "code": code, "message": message})


def _resolve(websocket: WebSocket, headers: dict[str, str]) -> Actor | None:
    """The caller of the upgrade request, with ``headers`` in place of its own when given; checked by the
    accounts' own rule, so a socket admits exactly who ``/v1/api`` admits."""
    scope = dict(websocket.scope, type="http")
    if headers:
        scope["headers"] = [(k.encode(), v.encode()) for k, v in headers.items()]
    app = websocket.app
    return identity.resolve(cast(Request, Request(scope)), app.state.settings, app.state.stores.pipelines)


async def _first_message_actor(websocket: WebSocket) -> Actor | None:
    message: Any = None
    with anyio.move_on_after(AUTH_SECONDS):
        try:
            message = await websocket.receive_json()
        except (WebSocketDisconnect, ValueError):
            return None
    token = (
        message.get("token") if isinstance(message, dict) and message.get("type") == "authenticate" else None
    )
    if not isinstance(token, str) or not token:
        return None
    return _resolve(websocket, {"authorization": f"Bearer {token}"})
