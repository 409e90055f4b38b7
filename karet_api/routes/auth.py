"""Routes of `/api` for auth."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["auth"])
