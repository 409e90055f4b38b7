"""Routes of `/api` for pipelines."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["pipelines"])
