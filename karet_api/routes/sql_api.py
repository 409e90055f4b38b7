"""KalamDB's SQL endpoint (seed 002) over Karet's tables: ``POST /v1/api/sql``.

A namespace is a pipeline (its slug with ``-`` as ``_``) and a table is ``<namespace>.<table_id>``; the
request's ``namespace_id`` lets unqualified names resolve there. Every answer of these routes, refusals
included, is in KalamDB's envelope: ``KalamRoute`` turns whatever a handler, its dependencies or body
parsing raise into it through ``kalam_error_response``.
"""

import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from karet_api.bearer import bearer_token
from karet_api.deps import ClientAddress, LimiterDep, QueryGateDep, SettingsDep, StoreDep
from karet_api.errors import kalam_error_response
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.query import SqlColumn, SqlErrorResponse, SqlRequest, SqlResponse, SqlResult
from karet_api.services.accounts import identity, visibility
from karet_api.services.accounts.identity import Actor
from karet_defs.errors import BadRequest, KaretError, PayloadTooLarge, PipelineNotFound, Unauthorized
from karet_defs.query.engine import QueryLimits, check_sql, namespace_slug, run_query

API_KEY_USER = "api-key"
SESSION_USER = "admin"
# DuckDB's type names as KalamDB spells its own; the rest keep DuckDB's name.
_KALAM_TYPES = {
    "BOOLEAN": "Boolean",
    "TINYINT": "TinyInt",
    "SMALLINT": "SmallInt",
    "INTEGER": "Int",
    "BIGINT": "BigInt",
    "HUGEINT": "HugeInt",
    "FLOAT": "Float",
    "DOUBLE": "Double",
    "VARCHAR": "Text",
    "DATE": "Date",
    "TIME": "Time",
    "TIMESTAMP": "Timestamp",
    "TIMESTAMP WITH TIME ZONE": "Timestamp",
    "BLOB": "Bytes",
    "UUID": "Uuid",
    "JSON": "Json",
}


class KalamRoute(CappedJsonRoute):
    """A route answering every failure in KalamDB's envelope, with the milliseconds it took."""

    kalam_codes: dict[type[KaretError], tuple[int, str]] | None = None  # a family's own codes, if any

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        codes = self.kalam_codes

        async def enveloped(request: Request) -> Response:
            started = time.perf_counter()
            try:
                return await handler(request)
            except KaretError as exc:
                return kalam_error_response(exc, _took(started), codes)
            except RequestValidationError as exc:
                reason = "; ".join(str(e.get("msg")) for e in exc.errors()[:5])
                return kalam_error_response(
                    BadRequest(f"invalid request body: {reason}"), _took(started), codes
                )
            except HTTPException as exc:
                error = (
                    PayloadTooLarge(str(exc.detail))
                    if exc.status_code == 413
                    else BadRequest(str(exc.detail))
                )
                return kalam_error_response(error, _took(started), codes)

        return enveloped


def require_bearer_actor(request: Request, settings: SettingsDep, stores: StoreDep) -> Actor:
    """The caller: the API key or an access token as a bearer, or a signed-in session; Basic is refused."""
    if request.headers.get("authorization", "").lower().startswith("basic "):
        raise Unauthorized("a bearer token is required")
    actor = identity.resolve(request, settings, stores.pipelines)
    # KalamDB takes the key as a bearer only: ``X-API-Key`` is Karet's header, not this API's.
    if actor is None or (actor.service and not bearer_token(request)):
        raise Unauthorized("a bearer token is required")
    return actor


def require_bearer(actor: Annotated[Actor, Depends(require_bearer_actor)]) -> str:
    """The caller's name as KalamDB reports it (``as_user``)."""
    return API_KEY_USER if actor.service else actor.name


Caller = Annotated[str, Depends(require_bearer)]
BearerActor = Annotated[Actor, Depends(require_bearer_actor)]

router = APIRouter(prefix="/v1/api", tags=["sql (KalamDB)"], route_class=KalamRoute)


@router.post(
    "/sql",
    response_model=SqlResponse,
    responses={
        status: {"model": SqlErrorResponse, "description": description}
        for status, description in (
            (400, "INVALID_SQL (syntax, binding, parameters), QUERY_TIMEOUT, RESULT_TOO_LARGE"),
            (401, "UNAUTHORIZED: no bearer token (or session)"),
            (403, "PERMISSION_DENIED: not one SELECT, two namespaces, or a file/extension/setting reached"),
            (404, "TABLE_NOT_FOUND: no such namespace (pipeline) or table"),
            (413, "PAYLOAD_TOO_LARGE"),
            (429, "RATE_LIMIT_EXCEEDED: all query slots busy or the caller's limit reached (Retry-After)"),
            (503, "CLUSTER_UNAVAILABLE: the store cannot be read"),
        )
    },
)
def sql(
    body: SqlRequest,
    stores: StoreDep,
    settings: SettingsDep,
    actor: BearerActor,
    caller: Caller,
    gate: QueryGateDep,
    limiter: LimiterDep,
    client: ClientAddress,
) -> SqlResponse:
    """Run one SELECT with `$1…$n` bound from `params`, over the tables of the namespace it names."""
    started = time.perf_counter()
    limiter.hit_sql(client, None if actor.service else actor.name)
    text = check_sql(body.sql)
    slug = namespace_slug(text, body.namespace_id)
    if slug is not None and not visibility.can_see(stores, actor, slug):
        raise PipelineNotFound(f"no pipeline config for `{slug}`")
    with gate.slot():
        result = run_query(
            stores,
            slug,
            text,
            body.params or None,
            limits=QueryLimits.from_settings(settings),
        )
    schema = [
        SqlColumn(name=c.name, data_type=_KALAM_TYPES.get(c.type, c.type), index=i)
        for i, c in enumerate(result.columns)
    ]
    answer = SqlResult(schema=schema, rows=result.rows, row_count=result.row_count, as_user=caller)
    return SqlResponse(results=[answer], took=_took(started))


def _took(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
