"""KalamDB's topic shapes (seed 002): consume and ack requests, the messages a consume returns."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from karet_defs.orchestration.feed import TOPICS

TOPIC_DESCRIPTION = (
    "`files`: the raw files under a source changed (arrived, changed or removed), as the sensor observed; "
    "`runs`: a job started or ended, with its counters; `tables`: a table has a new Delta version"
)


class OffsetStart(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    offset: int = Field(alias="Offset", ge=0, description="Start at this offset (inclusive)")


class ConsumeRequest(BaseModel):
    topic_id: str = Field(description=f"One of {', '.join(TOPICS)}: " + TOPIC_DESCRIPTION)
    group_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Consumer group: resumes after its acknowledged offset; none reads statelessly from "
        "`start` on every call",
    )
    start: Literal["Latest", "Earliest"] | OffsetStart = Field(
        "Latest", description="Where a new group (or a stateless read) begins; ignored once a group has one"
    )
    limit: int = Field(100, ge=1, le=1000)
    partition_id: int = Field(0, description="Topics have one partition, 0")
    timeout_seconds: float = Field(
        0, ge=0, le=60, description="Wait up to this long for a first message before answering empty"
    )

    def start_value(self) -> Literal["Latest", "Earliest"] | int:
        return self.start.offset if isinstance(self.start, OffsetStart) else self.start


class AckRequest(BaseModel):
    topic_id: str
    group_id: str = Field(min_length=1, max_length=200)
    partition_id: int = 0
    upto_offset: int = Field(ge=0, description="Acknowledge every message up to this offset, inclusive")


class TopicMessage(BaseModel):
    offset: int = Field(description="The storage id of the Dagster event the message comes from")
    topic_id: str
    partition_id: int
    timestamp: int = Field(description="When the event happened, in milliseconds since the epoch")
    key: str = Field(description="The pipeline (slug)")
    op: str = Field(description="`changed` (files), `started`/`ended` (runs), `version` (tables)")
    payload: dict[str, Any]


class TopicMessages(BaseModel):
    messages: list[TopicMessage]
    next_offset: int = Field(description="Where reading would go on: the last offset returned (or read) + 1")
    has_more: bool = Field(description="Whether `limit` was reached")


class AckResponse(BaseModel):
    success: bool = True
    acknowledged_offset: int = Field(description="The group's offset now (acks never move it back)")
