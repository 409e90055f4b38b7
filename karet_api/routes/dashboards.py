"""Routes of `/api` for dashboards."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["dashboards"])
