"""Routes of `/api` for preview."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["preview"])
