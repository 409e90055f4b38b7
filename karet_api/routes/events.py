"""Routes of `/api/events`: the S3 event webhook (public, authenticated by a shared secret)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["events"])
