"""One version of a Delta table as something a SQL engine scans lazily, with pushdown.

The files always come from the Delta log of that version, never from a listing. On the local store they
are handed to DuckDB's own Parquet reader as a list of paths (``ParquetFiles``), its fastest scan, with the
Hive partition columns typed as the table declares them. Elsewhere (S3, where DuckDB would need an
extension from the network) they become an Arrow dataset in which each file carries its partition values
from the log as a partition expression, so partition columns are restored typed and a filter on them skips
whole files; the files are opened through Arrow's own filesystems, never through delta-rs' readers, which
leave a native thread behind that aborts the interpreter at exit (see ``engine.delta``). The hidden
columns (raw file and mapping of a row) are left out either way.
"""

from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.fs as pafs

from karet_defs.config.models import AnalyticTable
from karet_defs.engine import delta
from karet_defs.engine.tables import partition_dtype
from karet_defs.store.base import ObjectStore, TableLocation


@dataclass(frozen=True)
class ParquetFiles:
    """A version's data files on this host, for DuckDB's ``read_parquet``: the only paths it may open."""

    paths: list[str]
    columns: list[str]  # the visible columns, in schema order
    partition_types: dict[str, str]  # partition column → DuckDB type, for ``hive_types``
    # Every file holds every data column (the log's per-file null counts say so): DuckDB may then take the
    # schema from one footer instead of reading and unifying all of them, which costs a query ~30 %.
    uniform: bool = False

    def select_sql(self) -> str:
        """The SELECT reading them (paths and names as SQL literals and identifiers, quotes doubled)."""
        paths = ", ".join(_literal(p) for p in self.paths)
        types = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in self.partition_types.items())
        columns = ", ".join('"' + c.replace('"', '""') + '"' for c in self.columns)
        union = "false" if self.uniform else "true"
        options = f"hive_partitioning = true, union_by_name = {union}" + (
            f", hive_types = {{{types}}}" if types else ""
        )
        return f"SELECT {columns} FROM read_parquet([{paths}], {options})"


def table_source(
    warehouse: ObjectStore,
    slug: str,
    table: AnalyticTable,
    version: int | None = None,
    *,
    local_files: bool = True,
) -> ParquetFiles | pds.Dataset:
    """The rows of ``table`` at ``version`` (default its latest): local files (unless ``local_files`` is
    false), or an Arrow dataset; an empty dataset of its declared columns when it was never written, so
    queries over a pipeline that has not run yet answer with no rows."""
    where = delta.location(warehouse, slug, table.id)
    loaded = delta.open_table(where, version)
    if loaded is None:
        if version is not None:
            raise delta.TableVersionNotFound(f"table `{table.id}` has no versions yet")
        return pds.dataset(_declared_schema(table).empty_table())
    schema = delta.visible_schema(loaded)
    files = delta.active_files(loaded)
    partition_by = loaded.metadata().partition_columns
    if local_files and where.local_root is not None and files.height:
        return ParquetFiles(
            paths=[f"{where.local_root}/{unquote(path)}" for path in files.get_column("path").to_list()],
            columns=schema.names,
            partition_types={key: _duckdb_type(schema.field(key).type) for key in partition_by},
            uniform=_every_file_has(files, [n for n in schema.names if n not in partition_by]),
        )
    filesystem, root = _filesystem(where)
    paths = [f"{root}/{unquote(path)}" for path in files.get_column("path").to_list()] if files.height else []
    partitions = [_partition_expression(row, partition_by, schema) for row in files.to_dicts()]
    return pds.FileSystemDataset.from_paths(
        paths, schema=schema, format=pds.ParquetFileFormat(), filesystem=filesystem, partitions=partitions
    )


def _every_file_has(files: pl.DataFrame, columns: list[str]) -> bool:
    """Whether the log records a null count of each column for every file: the writer records one for each
    column a file holds, so a file written before a column was added has none for it."""
    counts = [f"null_count.{c}" for c in columns]
    return all(c in files.columns for c in counts) and not any(files.select(counts).null_count().row(0))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _duckdb_type(kind: pa.DataType) -> str:
    """DuckDB's name for the Arrow types a partition column can have (see ``engine.write``)."""
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_integer(kind):
        return {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER"}.get(kind.bit_width, "BIGINT")
    if pa.types.is_floating(kind):
        return "DOUBLE"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"
    return "VARCHAR"


def _declared_schema(table: AnalyticTable) -> pa.Schema:
    frame = pl.DataFrame(schema={c.name: partition_dtype(table, c.name) for c in table.schema_})
    return frame.to_arrow().schema


def _partition_expression(
    row: dict[str, object], partition_by: list[str], schema: pa.Schema
) -> pc.Expression:
    expression = pc.scalar(True)
    for key in partition_by:
        value = row.get(f"partition.{key}")
        field = pc.field(key)
        term = field.is_null() if value is None else field == pa.scalar(value, type=schema.field(key).type)
        expression = expression & term
    return expression


def _filesystem(where: TableLocation) -> tuple[pafs.FileSystem, str]:
    """Arrow's filesystem reaching the table, and the table root's path in it."""
    if where.local_root is not None:
        return pafs.LocalFileSystem(), str(where.local_root)
    options = where.storage_options
    parsed = urlparse(where.uri)
    endpoint = urlparse(options.get("AWS_ENDPOINT_URL", ""))
    filesystem = pafs.S3FileSystem(
        # Empty credentials fall through to the AWS SDK's own chain, as the boto3 client does.
        access_key=options.get("AWS_ACCESS_KEY_ID") or None,
        secret_key=options.get("AWS_SECRET_ACCESS_KEY") or None,
        region=options.get("AWS_REGION") or None,
        endpoint_override=endpoint.netloc or None,
        scheme=endpoint.scheme or "https",
        force_virtual_addressing=options.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST") == "true",
        connect_timeout=5,
        request_timeout=60,
    )
    return filesystem, f"{parsed.netloc}{parsed.path}"
