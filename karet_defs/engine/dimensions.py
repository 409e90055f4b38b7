"""A run's dimensions with their rows: inline rows from the config, file-backed rows from lake CSV files.

A file-backed dimension reads every ``.csv`` file under its ``path_prefix`` (in key order): the ``key``
column, the ``values`` columns and, when named, the ``priority_column`` (an integer; anything else is 0), all
read as text, an empty field as an empty string, and a row with an empty key skipped, as Karet's worker
did. A file that cannot be read or lacks a column, more rows than the cap, or a key repeated in an exact
dimension makes the dimension unusable: the message names the file, and every mapping that uses the
dimension fails with it while the others run. Each dimension also gets a fingerprint (its definition and
the ETags of its files), part of the signature of the mappings using it: a changed CSV changes every row
those mappings produce, so their tables are rebuilt like after a config edit.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from karet_defs.config.models import Dimension, FileRows, Pipeline
from karet_defs.errors import KaretError
from karet_defs.expr import dimensions as dims
from karet_defs.expr.dimensions import DimensionTable
from karet_defs.store.base import ObjectInfo, ObjectStore

DIMENSION_EXTENSIONS = (".csv",)


@dataclass(frozen=True)
class LoadedDimensions:
    """The dimensions of one run: their rows by id, and a fingerprint of each (definition and files)."""

    tables: dict[str, DimensionTable]
    fingerprints: dict[str, str]


def load_dimensions(lake: ObjectStore, pipeline: Pipeline, slug: str, scratch: Path) -> LoadedDimensions:
    """Every dimension of ``pipeline`` with its rows; a broken one carries its error instead of raising."""
    tables: dict[str, DimensionTable] = {}
    fingerprints: dict[str, str] = {}
    for dimension in pipeline.dimensions:
        digest = hashlib.sha256(dimension.model_dump_json().encode())
        if isinstance(dimension.rows, FileRows):
            files = dimension_files(lake, dimension.rows, slug)
            for info in files:
                digest.update(f"\0{info.key}\0{info.etag}".encode())
            tables[dimension.id] = _file_table(lake, dimension, dimension.rows, slug, files, scratch)
        else:
            tables[dimension.id] = DimensionTable.inline(dimension)
        fingerprints[dimension.id] = digest.hexdigest()[:32]
    return LoadedDimensions(tables, fingerprints)


def dimension_files(lake: ObjectStore, rows: FileRows, slug: str) -> list[ObjectInfo]:
    """The CSV files under a file-backed dimension's prefix, in key order."""
    listed = lake.list(rows.resolved_prefix(slug))
    return sorted((i for i in listed if i.key.lower().endswith(DIMENSION_EXTENSIONS)), key=lambda i: i.key)


def _file_table(
    lake: ObjectStore, dimension: Dimension, rows: FileRows, slug: str, files: list[ObjectInfo], scratch: Path
) -> DimensionTable:
    empty = DimensionTable.inline(dimension)
    if not files:
        message = f"dimension `{dimension.id}` has no CSV file under {rows.resolved_prefix(slug)}"
        return DimensionTable(dimension, empty.rows, message)
    frames: list[pl.DataFrame] = []
    total = 0
    for info in files:
        try:
            frame = _read_file(lake, dimension, rows, info, scratch, dims.MAX_DIMENSION_ROWS + 1 - total)
        except _Unusable as exc:
            return DimensionTable(dimension, empty.rows, str(exc))
        frames.append(frame)
        total += frame.height
        if total > dims.MAX_DIMENSION_ROWS:
            break  # the cap is exceeded: no need to read further
    table = pl.concat(frames) if frames else empty.rows
    return DimensionTable(dimension, table, dims.rows_error(dimension, table))


class _Unusable(Exception):
    pass


def _read_file(
    lake: ObjectStore,
    dimension: Dimension,
    rows: FileRows,
    info: ObjectInfo,
    scratch: Path,
    limit: int,
) -> pl.DataFrame:
    """One file's rows, at most ``limit`` of them, in the shape ``DimensionTable`` holds."""
    try:
        path = lake.local_path(info.key)
        if path is None:
            scratch.mkdir(parents=True, exist_ok=True)
            path = scratch / f"{dimension.id}.{hashlib.sha256(info.key.encode()).hexdigest()[:12]}.csv"
            lake.download(info.key, path)
        frame = pl.read_csv(path, infer_schema=False, n_rows=limit, encoding="utf8")
    except KaretError as exc:
        raise _Unusable(
            f"dimension `{dimension.id}` file {info.key} could not be read: {exc.message}"
        ) from exc
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _Unusable(f"dimension `{dimension.id}` file {info.key} could not be read: {reason}") from exc
    wanted = [rows.key, *rows.values, *([rows.priority_column] if rows.priority_column else [])]
    for column in wanted:
        if column not in frame.columns:
            raise _Unusable(f"dimension `{dimension.id}` file {info.key} is missing column `{column}`")
    priority = (
        pl.col(rows.priority_column).str.strip_chars().cast(pl.Int64, strict=False).fill_null(0)
        if rows.priority_column
        else pl.lit(0, dtype=pl.Int64)
    )
    return frame.filter(pl.col(rows.key).fill_null("") != "").select(
        pl.concat_list(pl.col(rows.key)).alias(dims.PATTERNS),
        priority.alias(dims.PRIORITY),
        pl.lit(info.key, dtype=pl.String).alias(dims.ORIGIN),
        *(pl.col(name).fill_null("").alias(name) for name in rows.values),
    )
