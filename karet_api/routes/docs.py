"""The OpenAPI pages, Swagger UI at `/docs` and ReDoc at `/redoc`, self-hosted.

FastAPI's own pages load their scripts, styles and favicon from CDNs, which an air-gapped install cannot
reach; these load the same files from the pinned `fastapi-offline` package, which `create_app` mounts at
``ASSETS_PATH`` (FastAPI's "self-hosting JavaScript and CSS for docs" recipe).
"""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from karet_api.services.pages import CONTENT_SECURITY_POLICY

ASSETS_PATH = "/vendor/docs"
ASSETS_PACKAGE = ("fastapi_offline", "static")

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over the app's OpenAPI document."""
    root = request.scope.get("root_path", "")
    response = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
    )
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over the app's OpenAPI document, in the browser's own fonts."""
    root = request.scope.get("root_path", "")
    response = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )
    # ReDoc's sidebar shows its vendor's logo from a CDN; the policy refuses it and ReDoc hides the image.
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
