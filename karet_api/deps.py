"""Shared dependencies as ``Annotated`` aliases: settings, stores, the Dagster instance, the per-app state
``create_app`` builds (auth, its rate limiter, automatic runs, the webhook's pipeline index), the caller and
its address, worker auth."""

import hmac
from typing import Annotated

import dagster as dg
from fastapi import Depends, Request

from karet_api.bearer import bearer_token
from karet_api.services.accounts import identity
from karet_api.services.accounts.ratelimit import Limiter, client_key
from karet_api.services.auth.state import AuthState, auth_of
from karet_api.services.autoruns import AutoRuns
from karet_api.services.reload import DefinitionsReloader
from karet_api.services.webhook import PipelineIndex
from karet_defs.errors import Unauthorized
from karet_defs.query.gate import QueryGate
from karet_defs.settings import Settings
from karet_defs.store.base import Stores


def secure_cookies(request: Request) -> bool:
    """Whether the cookies set in answer to ``request`` carry ``Secure``: it came over HTTPS."""
    return request.url.scheme == "https"


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_stores(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    return stores


def get_instance(request: Request) -> dg.DagsterInstance:
    instance: dg.DagsterInstance = request.app.state.instance
    return instance


def get_reloader(request: Request) -> DefinitionsReloader:
    reloader: DefinitionsReloader = request.app.state.reloader
    return reloader


def get_query_gate(request: Request) -> QueryGate:
    gate: QueryGate = request.app.state.query_gate
    return gate


def get_auto_runs(request: Request) -> AutoRuns:
    auto_runs: AutoRuns = request.app.state.auto_runs
    return auto_runs


def get_limiter(auth: Annotated[AuthState, Depends(auth_of)]) -> Limiter:
    return auth.limiter


def get_pipeline_index(request: Request) -> PipelineIndex:
    index: PipelineIndex = request.app.state.pipeline_index
    return index


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ReloaderDep = Annotated[DefinitionsReloader, Depends(get_reloader)]
StoreDep = Annotated[Stores, Depends(get_stores)]
InstanceDep = Annotated[dg.DagsterInstance, Depends(get_instance)]
QueryGateDep = Annotated[QueryGate, Depends(get_query_gate)]
# ``auth_of`` also serves ``identity``, which identifies a request itself.
AuthDep = Annotated[AuthState, Depends(auth_of)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]
# The caller's address as the rate limits and the audit log count it (the first ``X-Forwarded-For`` hop).
ClientAddress = Annotated[str, Depends(client_key)]
AutoRunsDep = Annotated[AutoRuns, Depends(get_auto_runs)]
PipelineIndexDep = Annotated[PipelineIndex, Depends(get_pipeline_index)]


def require_user(request: Request, settings: SettingsDep, stores: StoreDep) -> identity.Actor:
    """Every ``/api/*`` route but auth and events needs the API key, an access token or a session."""
    return identity.require(request, settings, stores.pipelines)


CurrentUser = Annotated[identity.Actor, Depends(require_user)]


def require_worker_token(request: Request, settings: SettingsDep) -> None:
    """With ``KARET_WORKER_TOKEN`` set, the worker endpoints need ``Authorization: Bearer <token>``."""
    expected = settings.worker_token
    if expected and not hmac.compare_digest(bearer_token(request).encode(), expected.encode()):
        raise Unauthorized("missing or invalid bearer token", details=[])
