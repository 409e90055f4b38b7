"""Routes of `/api` for transfer."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["transfer"])
