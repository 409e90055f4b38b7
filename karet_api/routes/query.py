"""Karet's SQL page (REFERENCE §9): one SELECT over a pipeline's tables, and the pipeline's saved queries."""

from fastapi import APIRouter, Depends, status

from karet_api.deps import QueryGateDep, SettingsDep, StoreDep
from karet_api.roles import Role, require_role
from karet_api.routing import CappedJsonRoute
from karet_api.schemas.common import STORE_ERRORS, Ok, error_responses
from karet_api.schemas.query import (
    QueryRequest,
    QueryResponse,
    SavedQueryCreate,
    SavedQueryList,
    SavedQueryPublic,
)
from karet_defs.query.engine import QueryLimits, run_query
from karet_defs.query.saved import (
    SavedQuery,
    delete_saved_query,
    get_saved_query,
    list_saved_queries,
    save_query,
)
from karet_defs.slugs import sanitise_slug

router = APIRouter(prefix="/api", tags=["query"], route_class=CappedJsonRoute)

_COMMON = ((401, "not signed in"), *STORE_ERRORS)


@router.post(
    "/p/{slug}/query",
    response_model=QueryResponse,
    dependencies=[Depends(require_role(Role.auditor))],
    responses=error_responses(
        *_COMMON,
        (
            400,
            "config_parse_failed: the stored config is not a pipeline config; "
            "query_error: DuckDB refused the SQL (syntax, unknown table or column, memory limit); "
            "query_not_allowed: not exactly one SELECT, or a file, extension or setting was reached "
            "(`Only SELECT queries are allowed`); query_timeout: interrupted at the time limit; "
            "result_too_large: more rows than the row cap",
        ),
        (404, "pipeline_not_found, version_not_found"),
        (422, "missing_sql, query_too_long (over 10 000 characters), invalid_slug"),
        (429, "rate_limited: every query slot is busy (see Retry-After)"),
    ),
)
def query(
    slug: str, body: QueryRequest, stores: StoreDep, settings: SettingsDep, gate: QueryGateDep
) -> QueryResponse:
    """Run one read-only SELECT over the pipeline's tables, each known by its id and by `nameToSlug(name)`."""
    with gate.slot():
        result = run_query(
            stores,
            sanitise_slug(slug),
            body.sql,
            limits=QueryLimits.from_settings(settings),
            versions=body.versions,
        )
    columns = [c.name for c in result.columns]
    rows = [dict(zip(columns, row, strict=True)) for row in result.rows]
    return QueryResponse(columns=columns, rows=rows, rowCount=result.row_count)


@router.get(
    "/p/{slug}/queries",
    response_model=SavedQueryList,
    responses=error_responses(*_COMMON, (404, "pipeline_not_found"), (422, "invalid_slug")),
)
def list_queries(slug: str, stores: StoreDep) -> SavedQueryList:
    """The pipeline's saved queries, sorted by name."""
    return SavedQueryList(queries=[_public(q) for q in list_saved_queries(stores, sanitise_slug(slug))])


@router.post(
    "/p/{slug}/queries",
    response_model=SavedQueryPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        *_COMMON,
        (400, "invalid_query: the SQL does not plan over the pipeline's tables"),
        (404, "pipeline_not_found"),
        (409, "name_taken: a query whose name slugs alike exists"),
        (422, "missing_fields (name and sql), query_too_long, invalid_slug"),
    ),
)
def create_query(
    slug: str, body: SavedQueryCreate, stores: StoreDep, settings: SettingsDep
) -> SavedQueryPublic:
    """Save a query under the id `nameToSlug(name)`, after planning it with `LIMIT 0`."""
    saved = save_query(
        stores, sanitise_slug(slug), body.name, body.sql, limits=QueryLimits.from_settings(settings)
    )
    return _public(saved)


@router.get(
    "/p/{slug}/queries/{query_id}",
    response_model=SavedQueryPublic,
    responses=error_responses(*_COMMON, (404, "pipeline_not_found, query_not_found"), (422, "invalid_slug")),
)
def read_query(slug: str, query_id: str, stores: StoreDep) -> SavedQueryPublic:
    """One saved query by id."""
    return _public(get_saved_query(stores, sanitise_slug(slug), query_id))


@router.delete(
    "/p/{slug}/queries/{query_id}",
    response_model=Ok,
    responses=error_responses(*_COMMON, (404, "pipeline_not_found"), (422, "invalid_slug")),
)
def delete_query(slug: str, query_id: str, stores: StoreDep) -> Ok:
    """Delete a saved query; deleting one that does not exist is not an error."""
    delete_saved_query(stores, sanitise_slug(slug), query_id)
    return Ok()


def _public(query: SavedQuery) -> SavedQueryPublic:
    return SavedQueryPublic(id=query.id, name=query.name, sql=query.sql)
