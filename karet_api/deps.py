"""Shared dependencies as ``Annotated`` aliases: settings, stores, the Dagster instance, worker auth."""

import hmac
from typing import Annotated

import dagster as dg
from fastapi import Depends, Request

from karet_api.services import auth
from karet_api.services.reload import DefinitionsReloader
from karet_defs.errors import Unauthorized
from karet_defs.settings import Settings
from karet_defs.store.base import Stores


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_stores(request: Request) -> Stores:
    return request.app.state.stores


def get_instance(request: Request) -> dg.DagsterInstance:
    return request.app.state.instance


def get_reloader(request: Request) -> DefinitionsReloader:
    return request.app.state.reloader


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ReloaderDep = Annotated[DefinitionsReloader, Depends(get_reloader)]
StoreDep = Annotated[Stores, Depends(get_stores)]
InstanceDep = Annotated[dg.DagsterInstance, Depends(get_instance)]


def require_user(request: Request, settings: SettingsDep) -> None:
    """Every ``/api/*`` route but auth and events needs a session cookie or the API key."""
    if not auth.is_authenticated(request, settings):
        raise Unauthorized("missing or invalid session")


CurrentUser = Annotated[None, Depends(require_user)]


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def require_worker_token(request: Request, settings: SettingsDep) -> None:
    """With ``KARET_WORKER_TOKEN`` set, the worker endpoints need ``Authorization: Bearer <token>``."""
    expected = settings.worker_token
    if expected and not hmac.compare_digest(bearer_token(request).encode(), expected.encode()):
        raise Unauthorized("missing or invalid bearer token", details=[])
