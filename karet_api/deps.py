"""Shared dependencies as ``Annotated`` aliases: settings, stores, the Dagster instance, worker auth."""

import hmac
from typing import Annotated

import dagster as dg
from fastapi import Depends, Request

from karet_api.bearer import bearer_token
from karet_api.services.accounts import identity
from karet_api.services.reload import DefinitionsReloader
from karet_defs.errors import Unauthorized
from karet_defs.query.gate import QueryGate
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


def get_query_gate(request: Request) -> QueryGate:
    return request.app.state.query_gate


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ReloaderDep = Annotated[DefinitionsReloader, Depends(get_reloader)]
StoreDep = Annotated[Stores, Depends(get_stores)]
InstanceDep = Annotated[dg.DagsterInstance, Depends(get_instance)]
QueryGateDep = Annotated[QueryGate, Depends(get_query_gate)]


def require_user(request: Request, settings: SettingsDep, stores: StoreDep) -> identity.Actor:
    """Every ``/api/*`` route but auth and events needs the API key, an access token or a session."""
    return identity.require(request, settings, stores.pipelines)


CurrentUser = Annotated[identity.Actor, Depends(require_user)]


def require_worker_token(request: Request, settings: SettingsDep) -> None:
    """With ``KARET_WORKER_TOKEN`` set, the worker endpoints need ``Authorization: Bearer <token>``."""
    expected = settings.worker_token
    if expected and not hmac.compare_digest(bearer_token(request).encode(), expected.encode()):
        raise Unauthorized("missing or invalid bearer token", details=[])
