"""Saved queries (Karet E2, REFERENCE §9): ``pipelines/<slug>/queries/<id>.json`` holding ``{id, name, sql}``.

The id is ``nameToSlug(name)``, so two names that slug alike are one query and the second is refused
(``name_taken``, decided by a conditional put, so two racing saves cannot both win). A query is planned
over the pipeline's tables (``LIMIT 0``) before it is stored. The files sit in the pipeline's own folder:
rename, export and import carry them, and the raw-file watcher never takes them for input.
"""

import json
import re
from dataclasses import asdict, dataclass

from karet_defs.errors import (
    InvalidQuery,
    MissingFields,
    NameTaken,
    ObjectNotFound,
    PreconditionFailed,
    QueryError,
    SavedQueryNotFound,
)
from karet_defs.query.engine import QueryLimits, check_sql, pipeline_tables, plan_query
from karet_defs.query.names import name_to_slug
from karet_defs.store import keys
from karet_defs.store.base import Stores

_ID = re.compile(r"[a-z0-9_]+")
_SUFFIX = ".json"


@dataclass(frozen=True)
class SavedQuery:
    id: str
    name: str
    sql: str


def list_saved_queries(stores: Stores, slug: str) -> list[SavedQuery]:
    """Every saved query of the pipeline, sorted by name."""
    pipeline_tables(stores, slug)
    prefix = keys.queries_prefix(slug)
    found = []
    for info in stores.pipelines.list(prefix):
        relative = info.key[len(prefix) :]
        if "/" in relative or not relative.endswith(_SUFFIX):
            continue
        try:
            found.append(_decode(stores.pipelines.get(info.key)))
        except (ObjectNotFound, ValueError, KeyError, TypeError):
            continue  # deleted meanwhile, or not a query Karet wrote
    return sorted(found, key=lambda q: (q.name.casefold(), q.id))


def get_saved_query(stores: Stores, slug: str, query_id: str) -> SavedQuery:
    pipeline_tables(stores, slug)
    if not _ID.fullmatch(query_id):
        raise _not_found(query_id)
    try:
        return _decode(stores.pipelines.get(_key(slug, query_id)))
    except ObjectNotFound as exc:
        raise _not_found(query_id) from exc


def save_query(
    stores: Stores, slug: str, name: str | None, sql: str | None, *, limits: QueryLimits | None = None
) -> SavedQuery:
    """Store a new query named ``name``: ``missing_fields``, ``pipeline_not_found``, ``invalid_query`` when
    it does not plan, ``name_taken`` when a query of the same id exists."""
    if not name or not name.strip() or not sql or not sql.strip():
        raise MissingFields("name and sql are required")
    name = name.strip()
    check_sql(sql)
    pipeline_tables(stores, slug)
    try:
        plan_query(stores, slug, sql, limits=limits)
    except QueryError as exc:
        raise InvalidQuery(exc.message) from exc
    query = SavedQuery(id=name_to_slug(name), name=name, sql=sql)
    body = json.dumps(asdict(query), indent=2, ensure_ascii=False).encode()
    try:
        stores.pipelines.put(_key(slug, query.id), body, content_type="application/json", if_none_match=True)
    except PreconditionFailed as exc:
        raise _name_taken(query) from exc
    return query


def delete_saved_query(stores: Stores, slug: str, query_id: str) -> None:
    """Remove a saved query; a missing one is not an error (Karet's no-op)."""
    pipeline_tables(stores, slug)
    if _ID.fullmatch(query_id):
        stores.pipelines.delete(_key(slug, query_id))


def _key(slug: str, query_id: str) -> str:
    return f"{keys.queries_prefix(slug)}{query_id}{_SUFFIX}"


def _decode(body: bytes) -> SavedQuery:
    document = json.loads(body)
    return SavedQuery(id=str(document["id"]), name=str(document["name"]), sql=str(document["sql"]))


def _not_found(query_id: str) -> SavedQueryNotFound:
    return SavedQueryNotFound(f"no saved query `{query_id}`", extra={"id": query_id})


def _name_taken(query: SavedQuery) -> NameTaken:
    return NameTaken(
        f"a saved query named like `{query.name}` exists (id `{query.id}`)", extra={"id": query.id}
    )
