"""Reading one raw file into a typed frame of its source's schema columns.

CSV columns are read with the dtype their schema declares (``string``/``date`` as strings, ``int64``,
``float64``/``number`` as numbers), as REFERENCE §1.10 recommends: an account number that happens to be all
digits stays a string, and a non-numeric amount fails its file with a message naming the line, instead of
silently turning into null. NDJSON sources bind each schema column to a record path.
"""

import re
from pathlib import Path

import polars as pl
from polars.datatypes import DataTypeClass

from karet_defs.config.models import ColumnSchema, SourceContainer


class FileReadError(Exception):
    """One raw file cannot be read; the message is the user-facing reason."""


_DTYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "number": pl.Float64(),
    "bool": pl.Boolean(),
}
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

SOURCE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "csv": (".csv",),
    "ndjson": (".ndjson", ".jsonl", ".json"),
    "json": (".ndjson", ".jsonl", ".json"),
}


def declared_dtype(column: ColumnSchema) -> pl.DataType:
    """The dtype a raw column is parsed as; unknown and textual types are strings."""
    return _DTYPES.get(column.type, pl.String())


def read_source_file(path: Path, source: SourceContainer) -> pl.LazyFrame:
    """A lazy frame of exactly the source's schema columns, in schema order."""
    if source.format == "csv":
        return _read_csv(path, source.schema_)
    return _read_ndjson(path, source.schema_)


def describe_read_error(exc: Exception, path: Path, source: SourceContainer) -> str:
    """A one-line reason for a failed file, naming the data row and column of a value that did not parse."""
    first = str(exc).strip().split("\n\n", 1)[0].strip()
    if "utf-8" in first.lower():
        return f"{first}: the file is not valid UTF-8 (re-export it as UTF-8)"
    if source.format == "csv" and "could not parse" in first:
        located = _locate_unparseable(path, source.schema_)
        if located:
            return located
    return first


def _locate_unparseable(path: Path, schema: list[ColumnSchema]) -> str | None:
    # Polars reports a chunk-relative offset, not a row; a second, all-string pass finds the row exactly.
    raw = pl.scan_csv(path, infer_schema=False).with_row_index("__row")
    for column in schema:
        dtype = declared_dtype(column)
        if dtype == pl.String():
            continue
        bad = (
            raw.select("__row", pl.col(column.name))
            .filter(
                pl.col(column.name).is_not_null() & pl.col(column.name).cast(dtype, strict=False).is_null()
            )
            .head(1)
            .collect()
        )
        if bad.height:
            row, value = bad.row(0)
            return f"row {row + 1}: could not parse {value!r} as {column.type} in column `{column.name}`"
    return None


def raw_csv_values(path: Path, lines: list[int]) -> dict[int, dict[str, str | None]]:
    """The raw text of each column on the given lines of a CSV file (the header is line 1)."""
    if not lines:
        return {}
    raw = pl.scan_csv(path, infer_schema=False).with_row_index("__line", offset=2)
    found = raw.filter(pl.col("__line").is_in(lines)).collect()
    return {row.pop("__line"): row for row in found.iter_rows(named=True)}


def csv_header(path: Path, schema: list[ColumnSchema]) -> tuple[str, ...]:
    """The header row of a CSV file, checked to hold every schema column (else ``FileReadError``)."""
    try:
        header = tuple(pl.scan_csv(path, infer_schema=False).collect_schema().names())
    except pl.exceptions.NoDataError as exc:
        raise FileReadError("empty file (no header row)") from exc
    except pl.exceptions.PolarsError as exc:
        raise FileReadError(str(exc).split("\n\n", 1)[0]) from exc
    missing = [c.name for c in schema if c.name not in header]
    if missing:
        names = ", ".join(f'"{name}"' for name in missing)
        raise FileReadError(f"missing required columns: [{names}]")
    return header


def scan_csv_files(
    paths: list[Path], schema: list[ColumnSchema], header: tuple[str, ...], *, path_column: str | None = None
) -> pl.LazyFrame:
    """One lazy frame over CSV files sharing ``header``, projected to the schema columns (+ the file path)."""
    declared = {c.name: declared_dtype(c) for c in schema}
    read_schema = {name: declared.get(name, pl.String()) for name in header}
    frame = pl.scan_csv(paths, schema=read_schema, has_header=True, include_file_paths=path_column)
    return frame.select([c.name for c in schema] + ([path_column] if path_column else []))


def _read_csv(path: Path, schema: list[ColumnSchema]) -> pl.LazyFrame:
    return scan_csv_files([path], schema, csv_header(path, schema))


def _read_ndjson(path: Path, schema: list[ColumnSchema]) -> pl.LazyFrame:
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    if not head:
        raise FileReadError("empty file")
    if head.startswith(b"["):
        raise FileReadError(
            "file looks like a single JSON array; this source reads one JSON object per line (NDJSON)"
        )
    try:
        frame = pl.scan_ndjson(path, infer_schema_length=None, ignore_errors=True)
        available = frame.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise FileReadError(str(exc).split("\n\n", 1)[0]) from exc
    return frame.select([_json_column(c, available) for c in schema])


def _json_column(column: ColumnSchema, available: pl.Schema) -> pl.Expr:
    parts = [(m.group(1), m.group(2)) for m in _PATH_PART.finditer(column.path or column.name)]
    dtype = declared_dtype(column)
    if not parts or parts[0][0] is None or parts[0][0] not in available:
        return pl.lit(None, dtype=dtype).alias(column.name)
    current_type: pl.DataType | DataTypeClass = available[parts[0][0]]
    expr = pl.col(parts[0][0])
    for field, index in parts[1:]:
        if field is not None and isinstance(current_type, pl.Struct):
            names = {f.name: f.dtype for f in current_type.fields}
            if field not in names:
                return pl.lit(None, dtype=dtype).alias(column.name)
            expr, current_type = expr.struct.field(field), names[field]
        elif index is not None and isinstance(current_type, pl.List):
            expr, current_type = expr.list.get(int(index), null_on_oob=True), current_type.inner
        else:
            return pl.lit(None, dtype=dtype).alias(column.name)
    if dtype == pl.Int64() and current_type.is_float():
        expr = expr.cast(pl.Int64, strict=False)
    elif dtype == pl.Boolean() and current_type != pl.Boolean():
        expr = pl.lit(None, dtype=pl.Boolean())
    elif dtype == pl.String() and current_type.is_nested():
        expr = expr.struct.json_encode() if isinstance(current_type, pl.Struct) else expr.cast(pl.String)
    return expr.cast(dtype, strict=False).alias(column.name)
