"""The one assembly point of the API: ``create_app`` wires settings, stores, instance, routers, errors."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import dagster as dg
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from karet_api.errors import register_error_handlers
from karet_api.roles import authorize, document_roles
from karet_api.routes import (
    admin,
    approvals,
    auth,
    config,
    config_versions,
    dashboards,
    docs,
    events,
    files,
    job_events,
    jobs,
    members,
    pages,
    pipelines,
    preview,
    query,
    sql_api,
    table_versions,
    tables,
    tokens,
    topics,
    transfer,
    worker,
    ws,
)
from karet_api.services.auth.state import AuthState
from karet_api.services.autoruns import AutoRuns
from karet_api.services.feed import close_feed
from karet_api.services.reload import DefinitionsReloader
from karet_api.services.webhook import PipelineIndex
from karet_defs.orchestration.launch import resume_run, wait_for_background_runs
from karet_defs.orchestration.liveness import fail_dead_runs, orphaned_not_started
from karet_defs.query.gate import QueryGate
from karet_defs.scratch import reap_orphans
from karet_defs.settings import Settings, get_settings
from karet_defs.store.factory import build_stores

PROTECTED_ROUTERS = (
    admin,
    members,
    pipelines,
    transfer,
    config,
    config_versions,
    approvals,
    dashboards,
    tables,
    table_versions,
    query,
    job_events,  # before `jobs`: `/p/{slug}/jobs/events` is not a job id
    jobs,
    preview,
    files,
)
SHUTDOWN_GRACE_SECONDS = 60.0


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(_recover_runs, app.state.instance, app.state.settings)
    auto_runs: AutoRuns = app.state.auto_runs
    supervisor = auto_runs.start()
    yield
    await close_feed(app)  # ends the event streams, so the server is not held open by them
    supervisor.cancel()  # runs in flight go on; follow-ups not yet started are left to the sensor
    with suppress(asyncio.CancelledError):
        await supervisor
    # Runs started by this process execute on its threads: let them finish rather than die mid-publish.
    await run_in_threadpool(wait_for_background_runs, SHUTDOWN_GRACE_SECONDS)


def _recover_runs(instance: dg.DagsterInstance, settings: Settings) -> None:
    """After a crash: fail the runs whose process died (their pipelines are free at once), and take up the
    runs a dead API process had recorded but not yet begun, so none is lost."""
    fail_dead_runs(instance)
    if settings.queues_runs:
        return  # Dagster's queue and daemon own waiting runs there
    for run in orphaned_not_started(instance):
        resume_run(instance, run)


def create_app(settings: Settings | None = None, instance: dg.DagsterInstance | None = None) -> FastAPI:
    """Build the API over a store and a Dagster instance (``DAGSTER_HOME``'s when none is given)."""
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_lifespan,
        title="Karet on Dagster",
        version="0.1.0",
        description="Karet's HTTP API; jobs are Dagster runs, table facts come from Dagster asset metadata.",
        docs_url=None,  # `docs` serves both pages with their assets from this app, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    reap_orphans()  # uploads, imports and exports of an API process that was killed mid-request
    app.state.stores = build_stores(settings)
    app.state.instance = instance or dg.DagsterInstance.get()
    app.state.reloader = DefinitionsReloader(settings.dagster_url)
    app.state.query_gate = QueryGate(settings.query_concurrency, settings.query_wait_seconds)
    app.state.auth = AuthState.build(settings)
    app.state.pipeline_index = PipelineIndex(app.state.stores)
    app.state.auto_runs = AutoRuns(app.state.instance, app.state.stores, settings)
    app.include_router(worker.router)
    app.include_router(auth.router)
    app.include_router(events.router)
    app.include_router(topics.router)  # bearer auth and envelope of `/v1/api/sql`
    app.include_router(ws.router)  # authenticates on the socket
    app.include_router(sql_api.router)  # bearer auth of its own, refusals in KalamDB's envelope
    app.include_router(tokens.router)  # KalamDB's auth endpoints, public
    for module in PROTECTED_ROUTERS:
        app.include_router(module.router, dependencies=[Depends(authorize)])
    app.include_router(docs.router)
    app.include_router(pages.router)  # checks the session itself: a browser without one goes to /login
    app.mount(docs.ASSETS_PATH, StaticFiles(packages=[docs.ASSETS_PACKAGE]), name="docs-assets")
    app.mount("/static", StaticFiles(packages=[("karet_api", "static")]), name="static")
    register_error_handlers(app)
    document_roles(app, [module.router for module in PROTECTED_ROUTERS])
    return app
