"""KalamDB-style topics over Karet's feed: consumer groups, their committed offsets, consume and ack.

Offsets are storage ids of Dagster's event log (``orchestration.feed``); a topic has one partition, 0. A
group's offset (the last one it acknowledged, inclusive) lives in Dagster's key-value store
(``karet/topic-offset/<topic>/<partition>/<group>``), so it survives restarts of the API and the daemon and
is shared by every API process of the instance. A new group's ``start`` is resolved at its first consume and
stored as its position at once: a group starting at ``Latest`` that has not acknowledged anything yet still
gets what arrived between two consumes. Delivery is at least once: a consume returns what follows the
group's offset, and only an ack moves it, never backwards.

Consume long-polls: with nothing to return it waits on the process's ``FeedHub`` until the log grows (or
``timeout_seconds`` pass) and reads on from where it stopped.
"""

import threading
import time
from typing import Literal

import dagster as dg
from starlette.concurrency import run_in_threadpool

from karet_api.schemas.topics import ConsumeRequest, TopicMessage, TopicMessages
from karet_api.services.access import PipelineFilter
from karet_api.services.feed import FeedHub
from karet_defs.errors import BadRequest, NotFound
from karet_defs.orchestration.feed import TOPICS, FeedEvent, FeedReader

PARTITIONS = (0,)
_KEY = "karet/topic-offset/{topic}/{partition}/{group}"
# Acks of one process never move an offset back; across processes a lost race only redelivers.
_ack_lock = threading.Lock()


def check_topic(topic_id: str, partition_id: int) -> None:
    if topic_id not in TOPICS:
        raise NotFound(f"no topic `{topic_id}`; topics are {', '.join(TOPICS)}", code="topic_not_found")
    if partition_id not in PARTITIONS:
        raise BadRequest(f"topic `{topic_id}` has one partition, 0 (not {partition_id})")


def committed(instance: dg.DagsterInstance, topic: str, group: str, partition: int) -> int | None:
    """The group's offset: the last event it acknowledged (or its start, before any ack)."""
    key = _KEY.format(topic=topic, partition=partition, group=group)
    value = instance.run_storage.get_cursor_values({key}).get(key)
    return int(value) if value is not None else None


def acknowledge(instance: dg.DagsterInstance, topic: str, group: str, partition: int, upto: int) -> int:
    """Move the group's offset up to ``upto`` (inclusive); return the offset it now has."""
    with _ack_lock:
        current = committed(instance, topic, group, partition)
        if current is not None and current >= upto:
            return current
        key = _KEY.format(topic=topic, partition=partition, group=group)
        instance.run_storage.set_cursor_values({key: str(upto)})
        return upto


def start_position(reader: FeedReader, start: Literal["Latest", "Earliest"] | int) -> int:
    """The storage id a read begins after: ``Latest`` now, ``Earliest`` 0, an offset just before it."""
    if start == "Latest":
        return reader.latest()
    if start == "Earliest":
        return 0
    return max(int(start) - 1, 0)


def position(reader: FeedReader, request: ConsumeRequest) -> int:
    """Where the request reads after: the group's offset, or its start (stored for a new group)."""
    start = start_position(reader, request.start_value())
    if request.group_id is None:
        return start
    instance = reader.instance
    offset = committed(instance, request.topic_id, request.group_id, request.partition_id)
    if offset is None:
        offset = acknowledge(instance, request.topic_id, request.group_id, request.partition_id, start)
    return offset


def read_messages(
    reader: FeedReader, topic: str, after: int, limit: int, visible: PipelineFilter
) -> tuple[list[TopicMessage], int]:
    """Up to ``limit`` messages of ``topic`` the caller may see after ``after``, and the id read up to."""
    messages: list[TopicMessage] = []
    while len(messages) < limit:
        events, read_to = reader.read(after)
        for event in events:
            if event.topic == topic and visible(event.pipeline):
                messages.append(_message(event))
                if len(messages) == limit:
                    return messages, event.offset
        if read_to == after:
            break
        after = read_to
    return messages, after


async def consume(hub: FeedHub, request: ConsumeRequest, visible: PipelineFilter) -> TopicMessages:
    """The messages after the group's offset, waiting up to ``timeout_seconds`` for the first."""
    reader = hub.reader
    after = await run_in_threadpool(position, reader, request)
    deadline = time.monotonic() + request.timeout_seconds
    while True:
        messages, after = await run_in_threadpool(
            read_messages, reader, request.topic_id, after, request.limit, visible
        )
        left = deadline - time.monotonic()
        if messages or left <= 0:
            break
        await hub.wait_past(after, left)
    next_offset = (messages[-1].offset if messages else after) + 1
    return TopicMessages(messages=messages, next_offset=next_offset, has_more=len(messages) == request.limit)


def _message(event: FeedEvent) -> TopicMessage:
    return TopicMessage(
        offset=event.offset,
        topic_id=event.topic,
        partition_id=0,
        timestamp=int(event.timestamp * 1000),
        key=event.pipeline,
        op=event.kind,
        payload=event.payload,
    )
