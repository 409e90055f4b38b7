"""Routes of `/api` for config."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["config"])
