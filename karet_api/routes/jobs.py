"""Routes of `/api` for jobs."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["jobs"])
