"""The one assembly point of the API: ``create_app`` wires settings, stores, instance, routers, errors."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dagster as dg
from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from karet_api.deps import require_user
from karet_api.errors import register_error_handlers
from karet_api.routes import (
    auth,
    config,
    dashboards,
    events,
    files,
    jobs,
    pipelines,
    preview,
    query,
    sql_api,
    table_versions,
    tables,
    transfer,
    worker,
)
from karet_api.services.reload import DefinitionsReloader
from karet_defs.orchestration.launch import resume_run, wait_for_background_runs
from karet_defs.orchestration.liveness import fail_dead_runs, orphaned_not_started
from karet_defs.scratch import reap_orphans
from karet_defs.settings import Settings, get_settings
from karet_defs.store.factory import build_stores

PROTECTED_ROUTERS = (
    pipelines,
    transfer,
    config,
    dashboards,
    tables,
    table_versions,
    query,
    jobs,
    preview,
    files,
)
SHUTDOWN_GRACE_SECONDS = 60.0


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(_recover_runs, app.state.instance, app.state.settings)
    yield
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
    )
    app.state.settings = settings
    reap_orphans()  # uploads, imports and exports of an API process that was killed mid-request
    app.state.stores = build_stores(settings)
    app.state.instance = instance or dg.DagsterInstance.get()
    app.state.reloader = DefinitionsReloader(settings.dagster_url)
    app.include_router(worker.router)
    app.include_router(auth.router)
    app.include_router(events.router)
    app.include_router(sql_api.router)  # bearer auth of its own, refusals in KalamDB's envelope
    for module in PROTECTED_ROUTERS:
        app.include_router(module.router, dependencies=[Depends(require_user)])
    register_error_handlers(app)
    return app
