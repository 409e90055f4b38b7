"""Turning a table written by an earlier release (plain Hive-partitioned Parquet) into a Delta table.

Earlier releases wrote ``pipelines/<slug>/clean/<table_id>/<k>=<v>/<mapping_id>.parquet`` with the
partition columns only in the (percent-encoded) path and no ``_delta_log``. Conversion is in place and
copies nothing: one commit, version 0, adds exactly those files, with their row counts and statistics from
their footers, the partition values parsed from the path and typed by the declared schema. The rows a
reader sees are the same before and after.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from karet_defs.config.models import AnalyticTable
from karet_defs.engine import delta
from karet_defs.engine.tables import parse_partition_value, partition_dtype
from karet_defs.errors import Conflict, StoreError
from karet_defs.scratch import scratch_dir
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, ObjectStore

OPERATION = "migrate"
_LOG_DIR = "_delta_log/"


class LegacyTableError(Conflict):
    """A legacy table folder that cannot become one Delta table as it stands."""

    code = "legacy_table_invalid"


@dataclass(frozen=True)
class _LegacyFile:
    key: str
    relative: str  # under the table root, exactly as stored (percent-encoded segments)
    segments: list[tuple[str, str]]  # (partition key, decoded value) from the folders


def legacy_files(warehouse: ObjectStore, slug: str, table_id: str) -> list[ObjectInfo]:
    """The Parquet objects of a table folder, outside its ``_delta_log/`` (checkpoints are Parquet too)."""
    prefix = keys.table_prefix(slug, table_id)
    return [
        info
        for info in warehouse.list(prefix)
        if info.key.endswith(".parquet") and not info.key[len(prefix) :].startswith(_LOG_DIR)
    ]


def convert_legacy_table(warehouse: ObjectStore, slug: str, table: AnalyticTable) -> int | None:
    """Make the legacy Parquet files of ``table`` version 0 of a Delta table, in place; return that
    version, or None when there was nothing to convert (already a Delta table, or no legacy files).

    Files that carry the hidden columns are not legacy: a Delta writer left them uncommitted (a run killed
    before its first commit), and no reader ever saw their rows, so they stay out.
    """
    where = delta.location(warehouse, slug, table.id)
    if delta.open_table(where) is not None:
        return None
    infos = legacy_files(warehouse, slug, table.id)
    if not infos:
        return None
    prefix = keys.table_prefix(slug, table.id)
    files = [_parse(info.key, info.key[len(prefix) :]) for info in infos]
    partition_by = _partition_keys(files, slug, table.id)
    types = _partition_types(files, partition_by, table)
    added: list[delta.DataFile] = []
    schemas: list[pa.Schema] = []
    with scratch_dir("migrate") as tmp:
        for file in files:
            path = warehouse.local_path(file.key)
            if path is None:
                path = Path(tmp) / "part.parquet"
                warehouse.download(file.key, path)
            file_schema = pq.read_schema(path)
            if delta.SOURCE_COLUMN in file_schema.names:
                continue
            schemas.append(file_schema)
            values = {
                name: _log_value(parse_partition_value(value, types[name])) for name, value in file.segments
            }
            added.append(
                delta.describe_file(path, file.relative, values, Path(file.relative).stem, source="")
            )
    if not added:
        return None
    schema = _table_schema(schemas, partition_by, types)
    try:
        return delta.commit(
            where,
            None,
            delta.Commit(added=added),
            schema,
            partition_by,
            metadata={delta.META_OPERATION: OPERATION},
        )
    except StoreError:
        if delta.open_table(where) is not None:
            return None  # converted meanwhile by another process (a run, another `karet migrate`)
        raise


def _parse(key: str, relative: str) -> _LegacyFile:
    segments = []
    for segment in relative.split("/")[:-1]:
        name, sep, raw = segment.partition("=")
        if not sep:
            raise LegacyTableError(f"{key}: folder `{segment}` is not a Hive partition (`key=value`)")
        segments.append((name, unquote(raw)))
    return _LegacyFile(key, relative, segments)


def _partition_keys(files: list[_LegacyFile], slug: str, table_id: str) -> list[str]:
    layouts = {tuple(name for name, _ in f.segments) for f in files}
    if len(layouts) > 1:
        described = ", ".join("/".join(layout) or "(none)" for layout in sorted(layouts))
        raise LegacyTableError(
            f"table `{table_id}` of `{slug}` mixes partition layouts ({described}); run it with "
            "clean_run to rewrite it"
        )
    return list(layouts.pop())


def _partition_types(
    files: list[_LegacyFile], partition_by: list[str], table: AnalyticTable
) -> dict[str, pl.DataType]:
    """Each key's declared type, or string when a value in the paths does not parse as that type."""
    types: dict[str, pl.DataType] = {}
    for index, name in enumerate(partition_by):
        dtype = partition_dtype(table, name)
        values = {f.segments[index][1] for f in files}
        parses = all(parse_partition_value(v, dtype) is not None for v in values if v != "")
        types[name] = dtype if parses else pl.String()
    return types


def _log_value(value: object) -> str | None:
    return None if value is None else delta.partition_string(value)


def _table_schema(
    schemas: Iterable[pa.Schema], partition_by: list[str], types: dict[str, pl.DataType]
) -> pa.Schema:
    """The files' columns (unified across mappings), then the partition columns."""
    try:
        unified = pa.unify_schemas(list(schemas), promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise LegacyTableError(f"the table's files have incompatible schemas: {exc}") from exc
    fields = [
        # A column that is null in every file has no type Delta knows; any reader shows it null.
        field.with_type(pa.string()) if pa.types.is_null(field.type) else field
        for field in unified.remove_metadata()
        if field.name not in partition_by
    ]
    partitions = [pa.field(name, pl.Series([], dtype=types[name]).to_arrow().type) for name in partition_by]
    return pa.schema([*fields, *partitions])
