"""Answers of the automatic-run entry points: the S3 event webhook and raw file uploads."""

from pydantic import BaseModel, Field


class EventsReceived(BaseModel):
    received: int = Field(description="Number of records in the event envelope, whatever became of them")
    scheduled: list[str] = Field(description="Pipelines that got a run started now or a follow-up run")


class FileUploaded(BaseModel):
    ok: bool = True
    key: str = Field(description="The lake key the file was stored under")
    etag: str
    scheduled: bool = Field(description="Whether a run was started or a follow-up run flagged for it")
