"""One read-only SQL statement over one pipeline's tables, in a fresh, locked-down, in-memory DuckDB.

Every query gets its own connection holding only that pipeline's tables, each one Delta version scanned
lazily (``datasets``: DuckDB's Parquet reader over the log's files, or an Arrow dataset), under its id,
under Karet's ``nameToSlug`` of its name and as ``<namespace>.<id>``; no other pipeline's data is
reachable because none is there. DuckDB's own parser decides that the text is exactly one SELECT (a
comment cannot hide a second statement from it); then file and network access are switched off (but for
the tables' own data files) and the configuration locked, so ``read_csv``, ``glob``, ``COPY``,
``ATTACH``, ``INSTALL``, ``LOAD`` and settings are refused by DuckDB itself. Parameters are bound by
DuckDB (``$1``, ``?``, ``$name``), never written into the text. A memory limit, a timer that interrupts
the query and a row cap bound what one query can take. DuckDB's errors become ``QueryError`` subclasses.
"""

import datetime as dt
import decimal
import json
import math
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from karet_defs.config.models import AnalyticTable
from karet_defs.config.validate import parse_pipeline
from karet_defs.errors import (
    ConfigParseFailed,
    ConfigSchemaError,
    MissingSql,
    ObjectNotFound,
    PipelineNotFound,
    QueryError,
    QueryNotAllowed,
    QueryTableNotFound,
    QueryTimeout,
    QueryTooLong,
    ResultTooLarge,
)
from karet_defs.query.datasets import ParquetFiles, table_source
from karet_defs.query.names import SYSTEM_SCHEMAS, name_to_slug, namespace_of, slug_of_namespace
from karet_defs.scratch import scratch_dir
from karet_defs.settings import Settings
from karet_defs.slugs import MAX_SLUG_LENGTH
from karet_defs.store import keys
from karet_defs.store.base import Stores

MAX_SQL_CHARS = 10_000
ONLY_SELECT = "Only SELECT queries are allowed"
Params = Sequence[object] | Mapping[str, object] | None

# The value types ``duckdb.connect(config=...)`` accepts.
_DuckDBConfig = dict[str, str | bool | int | float | list[str]]
# Set when the connection opens and never changeable by a query: no extension is fetched or loaded, no
# Python variable of this process is scanned by name (DuckDB's replacement scans).
_CONNECTION_CONFIG: _DuckDBConfig = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "python_enable_replacements": False,
}
_NAMESPACE = re.compile(r"[a-z0-9_]+")
# Messages of DuckDB's catalog errors that mean "no such relation", as opposed to unknown functions.
_MISSING_RELATION = ("Table with name", "Schema with name", "Catalog with name")


@dataclass(frozen=True)
class QueryLimits:
    """What one query may take: DuckDB memory, wall-clock seconds, rows in the answer, threads."""

    memory_limit: str = "512MB"
    timeout_seconds: float = 30.0
    max_rows: int = 10_000
    threads: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> "QueryLimits":
        return cls(
            memory_limit=settings.duckdb_memory_limit,
            timeout_seconds=settings.query_timeout_seconds,
            max_rows=settings.query_max_rows,
        )


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB's name for it: BIGINT, DOUBLE, VARCHAR, DATE, DECIMAL(18,3), ...


@dataclass(frozen=True)
class QueryResult:
    columns: list[Column]
    rows: list[list[Any]]  # JSON-safe values, one list per row in column order

    @property
    def row_count(self) -> int:
        return len(self.rows)


def check_sql(sql: str | None) -> str:
    """The SQL text when present and within ``MAX_SQL_CHARS``; else ``missing_sql`` / ``query_too_long``."""
    if sql is None or not sql.strip():
        raise MissingSql("sql is required")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryTooLong(f"query is {len(sql)} characters long, the limit is {MAX_SQL_CHARS}")
    return sql


def run_query(
    stores: Stores,
    slug: str | None,
    sql: str | None,
    params: Params = None,
    *,
    limits: QueryLimits | None = None,
    versions: Mapping[str, int] | None = None,
) -> QueryResult:
    """Run one SELECT over the tables of pipeline ``slug`` (none when None) at their current versions, or at
    ``versions[table_id]``; at most ``limits.max_rows`` rows, else ``result_too_large``."""
    return _query(stores, slug, check_sql(sql), params, limits or QueryLimits(), versions or {}, plan=False)


def plan_query(
    stores: Stores,
    slug: str,
    sql: str | None,
    params: Params = None,
    *,
    limits: QueryLimits | None = None,
) -> list[Column]:
    """The columns ``sql`` would answer, found by running it with ``LIMIT 0`` (no row is read)."""
    return _query(stores, slug, check_sql(sql), params, limits or QueryLimits(), {}, plan=True).columns


def pipeline_tables(stores: Stores, slug: str) -> list[AnalyticTable]:
    """The analytic tables of a pipeline's config, which only has to parse (validation errors are the
    editor's business, not the reader's); ``pipeline_not_found`` when there is no config."""
    try:
        raw = stores.pipelines.get(keys.config_key(slug))
    except ObjectNotFound as exc:
        raise PipelineNotFound(f"no pipeline config for `{slug}`") from exc
    try:
        return parse_pipeline(raw).analytic_tables
    except ConfigSchemaError as exc:
        raise ConfigParseFailed(exc.message, details=exc.details) from exc


def parameter_names(sql: str) -> set[str]:
    """The ``$name`` parameters of ``sql`` as DuckDB's parser finds them (not in literals or comments)."""
    with duckdb.connect(":memory:", config=_CONNECTION_CONFIG) as con:
        try:
            statements = con.extract_statements(check_sql(sql))
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc
    return {name for statement in statements for name in statement.named_parameters}


def namespaces_in(sql: str) -> set[str]:
    """The schemas the SQL qualifies its tables with (``spending.transactions`` → ``spending``), as DuckDB's
    parser reads them; the built-in schemas are left out."""
    with duckdb.connect(":memory:", config=_CONNECTION_CONFIG) as con:
        # Refused first: DuckDB only serialises SELECTs, and the refusal should say why.
        _require_one_select(con, check_sql(sql))
        tree = _syntax_tree(con, sql)
    if tree.get("error"):
        raise QueryError(str(tree.get("error_message") or "the SQL does not parse"))
    found = {ref["schema_name"].lower() for ref in _base_tables(tree) if ref.get("schema_name")}
    return found - SYSTEM_SCHEMAS


def _syntax_tree(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    row = con.execute("SELECT json_serialize_sql($1)", [sql]).fetchone()
    return json.loads(row[0]) if row else {}


def _relations_named(con: duckdb.DuckDBPyConnection, sql: str) -> set[str] | None:
    """The relation names the SQL reads (lower case, bare and ``schema.name``), or None when DuckDB cannot
    say; CTE names come along, which only costs registering a table the query shadows."""
    tree = _syntax_tree(con, sql)
    if tree.get("error"):
        return None
    names = set()
    for ref in _base_tables(tree):
        name = str(ref.get("table_name", "")).lower()
        schema = str(ref.get("schema_name") or "").lower()
        names.add(f"{schema}.{name}" if schema else name)
    return names


def namespace_slug(sql: str, namespace_id: str | None = None) -> str | None:
    """The pipeline a KalamDB-style query reads: the one namespace its tables are qualified with, or the
    request's default ``namespace_id``; None when it names none. Two namespaces are refused (a query sees
    one pipeline); a name that cannot be a namespace is ``pipeline_not_found``."""
    named = namespaces_in(sql)
    if namespace_id:
        named.add(namespace_id.lower())
    if len(named) > 1:
        listed = ", ".join(sorted(named))
        raise QueryNotAllowed(f"a query reads the tables of one namespace (pipeline), not of {listed}")
    if not named:
        return None
    namespace = named.pop()
    if not _NAMESPACE.fullmatch(namespace) or len(namespace) > MAX_SLUG_LENGTH:
        raise PipelineNotFound(f"no namespace `{namespace}`")
    return slug_of_namespace(namespace)


def _base_tables(node: object) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "BASE_TABLE":
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _query(
    stores: Stores,
    slug: str | None,
    sql: str,
    params: Params,
    limits: QueryLimits,
    versions: Mapping[str, int],
    *,
    plan: bool,
) -> QueryResult:
    tables = pipeline_tables(stores, slug) if slug is not None else []
    unknown = set(versions) - {t.id for t in tables}
    if unknown:
        raise QueryTableNotFound(f"pipeline `{slug}` has no table {', '.join(sorted(unknown))}")
    with scratch_dir("query") as spill, _connect(limits, spill) as con:
        _require_one_select(con, sql)
        readable = []
        if slug is not None:
            readable = _register(con, stores, slug, tables, versions, _relations_named(con, sql))
        # From here DuckDB opens no file but the tables' own data files, loads nothing, changes no setting.
        con.execute("SET allowed_paths = $1", [readable])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return _execute(con, sql, params, limits, plan=plan)


def _connect(limits: QueryLimits, spill: str) -> duckdb.DuckDBPyConnection:
    config: _DuckDBConfig = {
        **_CONNECTION_CONFIG,
        "memory_limit": limits.memory_limit,
        "threads": limits.threads,
        "temp_directory": spill,
    }
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise QueryError(f"cannot start the query engine: {exc}") from exc
    con.execute("SET enable_progress_bar = false")  # a server's terminal is no place for one
    return con


def _require_one_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "none"
        raise QueryNotAllowed(ONLY_SELECT, details=[{"kind": "statements", "message": kinds}])


def _register(
    con: duckdb.DuckDBPyConnection,
    stores: Stores,
    slug: str,
    tables: list[AnalyticTable],
    versions: Mapping[str, int],
    named: set[str] | None,
) -> list[str]:
    """Each table under its id; under its ``nameToSlug`` name unless another table has that id (or an
    earlier table that name); and as ``<namespace>.<id>``. Only the tables ``named`` names are opened (all
    when it is None): each costs a Delta log read. Returns the local data files the views read."""
    ids = {t.id for t in tables}
    aliases: set[str] = set()
    namespace = namespace_of(slug)
    qualified = namespace not in SYSTEM_SCHEMAS
    if qualified:
        con.execute(f"CREATE SCHEMA {quote_identifier(namespace)}")
    readable: list[str] = []
    for table in tables:
        alias = name_to_slug(table.name) if table.name else table.id
        shows_alias = alias not in ids and alias not in aliases
        if shows_alias:
            aliases.add(alias)
        names = {table.id.lower(), f"{namespace}.{table.id.lower()}"} | ({alias} if shows_alias else set())
        if named is not None and not names & named and table.id not in versions:
            continue  # a version asked for is still checked, so a missing one is reported
        readable.extend(_register_table(con, stores, slug, table, versions.get(table.id)))
        # Both live in the temporary catalog; the full name keeps the views below from resolving a name to
        # themselves.
        source = f"temp.main.{quote_identifier(table.id)}"
        if shows_alias:
            con.execute(f"CREATE VIEW {quote_identifier(alias)} AS SELECT * FROM {source}")
        if qualified:
            qualified_name = f"{quote_identifier(namespace)}.{quote_identifier(table.id)}"
            con.execute(f"CREATE VIEW {qualified_name} AS SELECT * FROM {source}")
    return readable


def _register_table(
    con: duckdb.DuckDBPyConnection, stores: Stores, slug: str, table: AnalyticTable, version: int | None
) -> list[str]:
    """One table as a temporary view (or Arrow object) named by its id; the local files it reads."""
    found = table_source(stores.warehouse, slug, table, version)
    if isinstance(found, ParquetFiles):
        try:
            con.execute(f"CREATE TEMP VIEW {quote_identifier(table.id)} AS {found.select_sql()}")
            return found.paths
        except duckdb.Error:
            # A column of the schema that no data file has yet (added by a schema change) cannot be bound
            # by DuckDB's reader; Arrow's dataset reads it as nulls.
            found = table_source(stores.warehouse, slug, table, version, local_files=False)
    con.register(table.id, found)
    return []


def quote_identifier(identifier: str) -> str:
    """``identifier`` as a SQL identifier: double-quoted, inner quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


def _execute(
    con: duckdb.DuckDBPyConnection, sql: str, params: Params, limits: QueryLimits, *, plan: bool
) -> QueryResult:
    timer = threading.Timer(limits.timeout_seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        relation = con.sql(sql, params=_bindable(params))
        if relation is None:  # DuckDB answers None for statements that return nothing
            raise QueryNotAllowed(ONLY_SELECT)
        columns = [
            Column(name, str(kind)) for name, kind in zip(relation.columns, relation.types, strict=True)
        ]
        # One row past the cap tells a complete answer from a cut one without reading the rest.
        rows = relation.limit(0 if plan else limits.max_rows + 1).fetchall()
    except duckdb.InterruptException as exc:
        raise QueryTimeout(f"query interrupted after the time limit of {limits.timeout_seconds:g} s") from exc
    except duckdb.Error as exc:
        raise _translate(exc) from exc
    finally:
        timer.cancel()
    if len(rows) > limits.max_rows:
        raise ResultTooLarge(
            f"the query answers more than {limits.max_rows} rows: aggregate, filter or add a LIMIT"
        )
    return QueryResult(columns=columns, rows=[[json_value(v) for v in row] for row in rows])


def _bindable(params: Params) -> list[object] | dict[str, object] | None:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {str(k): v for k, v in params.items()}
    return list(params)


def _translate(exc: duckdb.Error) -> QueryError:
    message = str(exc)
    if isinstance(exc, duckdb.PermissionException):
        return QueryNotAllowed(f"{ONLY_SELECT} over the pipeline's tables: {message}")
    if isinstance(exc, duckdb.CatalogException) and any(m in message for m in _MISSING_RELATION):
        return QueryTableNotFound(message)
    return QueryError(message)


def json_value(value: object) -> object:
    """A DuckDB value as JSON can carry it: ISO dates and times, floats for decimals, None for NaN and
    infinities, text for UUIDs, intervals and bytes (UTF-8, replaced where invalid)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(json_value(k)): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    return str(value)
