"""What a config version would do to the data: its sandbox tables compared with production's.

The sandbox is the one (QA or UAT, the version's own environment first) whose newest commit of some table
records this version (``history.sandbox``); a table whose newest commit there is another version's is not
this version's and counts as absent. Each table's current version on both sides is read as the query API
reads it (``query.datasets.table_source``) into one in-memory DuckDB: rows per partition (the version's
partition keys both sides have), the columns added, removed or retyped, and the rows found on one side
only, compared on the columns both sides have (a retyped one as text), with a small sample of them.
"""

from typing import Any, Literal

import duckdb
from pydantic import BaseModel, Field

from karet_defs.catalog import read_pipeline
from karet_defs.config.models import AnalyticTable, Pipeline
from karet_defs.engine import delta
from karet_defs.errors import KaretError, NoSandboxRun, QueryError
from karet_defs.history.records import Environment
from karet_defs.history.sandbox import (
    META_CONFIG_VERSION,
    SANDBOX_ENVIRONMENTS,
    environment_stores,
    version_pipeline,
)
from karet_defs.history.versions import config_version_of, read_history
from karet_defs.query.datasets import ParquetFiles, table_source
from karet_defs.query.engine import QueryLimits, json_value, quote_identifier
from karet_defs.scratch import scratch_dir
from karet_defs.store import keys
from karet_defs.store.base import ObjectStore, Stores

SAMPLE_ROWS = 20
Side = Literal["production", "sandbox"]
TableStatus = Literal["added", "removed", "changed", "unchanged"]
_SIDES: tuple[Side, Side] = ("production", "sandbox")


class PartitionRows(BaseModel):
    partition: str = Field(
        description="`key=value/…` of the version's partition keys; empty: the whole table"
    )
    production: int
    sandbox: int


class ColumnType(BaseModel):
    name: str
    type: str = Field(description="The type as the query API names it (BIGINT, VARCHAR, DATE, …)")


class RetypedColumn(BaseModel):
    name: str
    production: str
    sandbox: str


class SchemaDifference(BaseModel):
    added: list[ColumnType] = Field(description="Columns only the sandbox table has")
    removed: list[ColumnType] = Field(description="Columns only the production table has")
    retyped: list[RetypedColumn]


class DifferingRow(BaseModel):
    side: Side = Field(description="The side holding the row; the other has no row equal to it")
    row: dict[str, Any] = Field(description="The row, on the columns both sides have")


class TableSide(BaseModel):
    delta_version: int
    rows: int


class TableImpact(BaseModel):
    table: str
    status: TableStatus = Field(
        description="added: production has no such table; removed: the version writes none; changed: rows "
        "or schema differ"
    )
    production: TableSide | None
    sandbox: TableSide | None
    partition_keys: list[str]
    partitions: list[PartitionRows]
    schema_difference: SchemaDifference
    rows_only_in_production: int
    rows_only_in_sandbox: int
    sample: list[DifferingRow] = Field(description=f"At most {SAMPLE_ROWS} rows found on one side only")


class Impact(BaseModel):
    pipeline: str
    version: int
    environment: Environment = Field(description="The sandbox compared: where the version's run wrote")
    job_id: str | None = Field(description="The sandbox run whose tables are compared")
    production_version: int | None = Field(description="The config version production runs")
    tables: list[TableImpact]


def version_impact(stores: Stores, slug: str, version: int, limits: QueryLimits | None = None) -> Impact:
    """Compare the version's sandbox tables with production's; ``NoSandboxRun`` when it has none yet."""
    history, _ = read_history(stores.pipelines, slug)
    record = history.get(version)
    pipeline = version_pipeline(stores, slug, version)
    preferred = [record.environment] if record.environment in SANDBOX_ENVIRONMENTS else []
    for environment in dict.fromkeys([*preferred, *SANDBOX_ENVIRONMENTS]):
        sandbox = environment_stores(stores, slug, environment).warehouse
        commits = _commits_of(sandbox, slug, pipeline, version)
        if commits:
            return _compare(stores, sandbox, slug, version, pipeline, environment, commits, limits)
    raise NoSandboxRun(
        f"version {version} has no sandbox run yet: start one with POST …/versions/{version}/sandbox-run",
        extra={"version": version},
    )


def impact_if_run(
    stores: Stores, slug: str, version: int, limits: QueryLimits | None = None
) -> Impact | None:
    """``version_impact``, or None while the version has no sandbox run."""
    try:
        return version_impact(stores, slug, version, limits)
    except NoSandboxRun:
        return None


def _commits_of(
    sandbox: ObjectStore, slug: str, pipeline: Pipeline, version: int
) -> dict[str, tuple[int, dict[str, object]]]:
    """Table id → its newest Delta version and that commit's info, for the tables the version's run wrote."""
    found: dict[str, tuple[int, dict[str, object]]] = {}
    for table in pipeline.analytic_tables:
        where = delta.location(sandbox, slug, table.id)
        loaded = delta.open_table(where)
        if loaded is None:
            continue
        info = delta.commit_info(where, loaded.version(), sandbox, keys.table_prefix(slug, table.id))
        if info is not None and info.get(META_CONFIG_VERSION) == str(version):
            found[table.id] = (loaded.version(), info)
    return found


def _compare(
    stores: Stores,
    sandbox: ObjectStore,
    slug: str,
    version: int,
    pipeline: Pipeline,
    environment: Environment,
    commits: dict[str, tuple[int, dict[str, object]]],
    limits: QueryLimits | None,
) -> Impact:
    production = {t.id: t for t in read_pipeline(stores, slug).analytic_tables}
    written = {t.id: t for t in pipeline.analytic_tables if t.id in commits}
    limits = limits or QueryLimits()
    tables: list[TableImpact] = []
    for table_id in dict.fromkeys([*(t.id for t in pipeline.analytic_tables), *production]):
        definitions = {"production": production.get(table_id), "sandbox": written.get(table_id)}
        # The sandbox is read at the version checked above, so a run committing meanwhile cannot mix in.
        sources = {
            "production": (stores.warehouse, None),
            "sandbox": (sandbox, commits[table_id][0] if table_id in commits else None),
        }
        with scratch_dir("impact") as spill, _connect(limits, spill) as con:
            present: dict[Side, int] = {}
            for side in _SIDES:
                table, (warehouse, at) = definitions[side], sources[side]
                if (
                    table is not None
                    and (found := _register(con, side, warehouse, slug, table, at)) is not None
                ):
                    present[side] = found
            if present:
                declared = pipeline.table(table_id) or production[table_id]
                try:
                    tables.append(_table_impact(con, table_id, present, list(declared.partition_keys)))
                except duckdb.Error as exc:
                    raise KaretError(
                        f"cannot compare table `{table_id}` with production: {exc}", code="impact_failed"
                    ) from exc
    job_id = next(
        (str(info[delta.META_JOB_ID]) for _, info in commits.values() if delta.META_JOB_ID in info), None
    )
    return Impact(
        pipeline=slug,
        version=version,
        environment=environment,
        job_id=job_id,
        production_version=config_version_of(stores, slug),
        tables=tables,
    )


def _connect(limits: QueryLimits, spill: str) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": limits.memory_limit,
                "threads": limits.threads,
                "temp_directory": spill,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )
    except duckdb.Error as exc:
        raise QueryError(f"cannot start the comparison engine: {exc}") from exc
    con.execute("SET enable_progress_bar = false")
    return con


def _register(
    con: duckdb.DuckDBPyConnection,
    name: Side,
    warehouse: ObjectStore,
    slug: str,
    table: AnalyticTable,
    version: int | None,
) -> int | None:
    """The table at ``version`` (default its current one) as the view ``name``; that Delta version, None
    when the table was never written."""
    if version is None:
        loaded = delta.open_table(delta.location(warehouse, slug, table.id))
        if loaded is None:
            return None
        version = loaded.version()
    found = table_source(warehouse, slug, table, version)
    if isinstance(found, ParquetFiles):
        try:
            con.execute(f"CREATE VIEW {name} AS {found.select_sql()}")
            return version
        except duckdb.Error:
            # A column no data file has yet (added by a schema change) is read as nulls by Arrow only.
            found = table_source(warehouse, slug, table, version, local_files=False)
    con.register(f"{name}_arrow", found)
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_arrow")
    return version


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    relation = con.sql(f"SELECT * FROM {name}")
    return {column: str(kind) for column, kind in zip(relation.columns, relation.types, strict=True)}


def _table_impact(
    con: duckdb.DuckDBPyConnection, table_id: str, present: dict[Side, int], partition_keys: list[str]
) -> TableImpact:
    columns = {side: _columns(con, side) for side in present}
    for side in _SIDES:
        if side not in present:
            # The absent side as an empty table of the other's columns: its rows are all one-sided.
            other = next(iter(present))
            con.execute(f"CREATE VIEW {side} AS SELECT * FROM {other} LIMIT 0")
    prod, sand = columns.get("production", {}), columns.get("sandbox", {})
    difference = SchemaDifference(
        added=[ColumnType(name=c, type=t) for c, t in sand.items() if c not in prod],
        removed=[ColumnType(name=c, type=t) for c, t in prod.items() if c not in sand],
        retyped=[
            RetypedColumn(name=c, production=prod[c], sandbox=t)
            for c, t in sand.items()
            if c in prod and prod[c] != t
        ],
    )
    shared = [c for c in (sand or prod) if c in (prod or sand)]
    partition_by = [k for k in partition_keys if k in shared]
    counts = {side: _partition_counts(con, side, partition_by) for side in _SIDES}
    rows = {side: sum(counts[side].values()) for side in _SIDES}
    partitions = [
        PartitionRows(partition=label, production=counts["production"].get(label, 0), sandbox=n)
        for label, n in counts["sandbox"].items()
    ] + [
        PartitionRows(partition=label, production=n, sandbox=0)
        for label, n in counts["production"].items()
        if label not in counts["sandbox"]
    ]
    partitions.sort(key=lambda p: p.partition)
    only, sample = _one_sided_rows(con, shared, retyped={r.name for r in difference.retyped})
    sides = {
        side: TableSide(delta_version=present[side], rows=rows[side]) if side in present else None
        for side in _SIDES
    }
    if sides["production"] is None:
        status: TableStatus = "added"
    elif sides["sandbox"] is None:
        status = "removed"
    elif (
        only["production"] or only["sandbox"] or difference.added or difference.removed or difference.retyped
    ):
        status = "changed"
    else:
        status = "unchanged"
    return TableImpact(
        table=table_id,
        status=status,
        production=sides["production"],
        sandbox=sides["sandbox"],
        partition_keys=partition_by,
        partitions=partitions,
        schema_difference=difference,
        rows_only_in_production=only["production"],
        rows_only_in_sandbox=only["sandbox"],
        sample=sample,
    )


def _partition_counts(con: duckdb.DuckDBPyConnection, side: str, partition_by: list[str]) -> dict[str, int]:
    if not partition_by:
        (total,) = con.execute(f"SELECT count(*) FROM {side}").fetchone() or (0,)
        return {"": total} if total else {}
    labels = ", ".join(f"CAST({quote_identifier(k)} AS VARCHAR)" for k in partition_by)
    found = con.execute(f"SELECT {labels}, count(*) FROM {side} GROUP BY ALL").fetchall()
    return {
        "/".join(
            f"{k}={'null' if v is None else v}" for k, v in zip(partition_by, row[:-1], strict=True)
        ): row[-1]
        for row in found
    }


def _one_sided_rows(
    con: duckdb.DuckDBPyConnection, shared: list[str], *, retyped: set[str]
) -> tuple[dict[Side, int], list[DifferingRow]]:
    """Per side, how many rows the other side has no equal of (multiset difference), and a sample."""
    if not shared:
        return {"production": 0, "sandbox": 0}, []
    select = ", ".join(
        f"CAST({quote_identifier(c)} AS VARCHAR) AS {quote_identifier(c)}"
        if c in retyped
        else quote_identifier(c)
        for c in shared
    )
    only: dict[Side, int] = {}
    picked: dict[Side, list[tuple[Any, ...]]] = {}
    opposite: dict[Side, Side] = {"production": "sandbox", "sandbox": "production"}
    for side, other in opposite.items():
        con.execute(
            f"CREATE TEMP TABLE only_{side} AS "
            f"SELECT {select} FROM {side} EXCEPT ALL SELECT {select} FROM {other}"
        )
        (only[side],) = con.execute(f"SELECT count(*) FROM only_{side}").fetchone() or (0,)
        picked[side] = con.execute(f"SELECT * FROM only_{side} ORDER BY ALL LIMIT {SAMPLE_ROWS}").fetchall()
    # Half the sample each, the rest to the side with more to show.
    share = {
        "production": min(
            len(picked["production"]), max(SAMPLE_ROWS // 2, SAMPLE_ROWS - len(picked["sandbox"]))
        ),
        "sandbox": min(
            len(picked["sandbox"]), max(SAMPLE_ROWS // 2, SAMPLE_ROWS - len(picked["production"]))
        ),
    }
    sample = [
        DifferingRow(side=side, row={c: json_value(v) for c, v in zip(shared, row, strict=True)})
        for side in _SIDES
        for row in picked[side][: share[side]]
    ]
    return only, sample
