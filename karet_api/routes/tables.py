"""Routes of `/api` for tables."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["tables"])
