"""Routes of `/api/p/<slug>/files`: raw file uploads into a pipeline's source folder."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["files"])
