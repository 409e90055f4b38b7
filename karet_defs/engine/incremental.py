"""Publishing only the partitions a run changes, when the last publish of the mapping is known to be intact.

After each successful publish of a mapping, the fragment cache records which raw file (key + fragment)
fed which partitions, and the ETag of every object it published. The next run then rewrites only the
partitions touched by new, changed or removed files, from the fragments that feed them. It falls back to a
full rewrite whenever that could differ from one: no record, a clean run, an unpartitioned table,
table-wide checks (``unique`` assertions, dedup keys that cross partitions), or published objects that are
no longer the ones recorded.
"""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from karet_defs.config.models import AnalyticTable
from karet_defs.engine.fragments import scan_fragments

MANIFEST_NAME = "published.json"
PartitionValues = tuple[object, ...]


@dataclass
class FileEntry:
    fragment: str
    parts: list[list[object]]


@dataclass
class Manifest:
    table_prefix: str
    files: dict[str, FileEntry]
    published: dict[str, str]


def load_manifest(folder: Path, table_prefix: str) -> Manifest | None:
    """The record of the mapping's last publish, if any and for this table."""
    try:
        raw = json.loads((folder / MANIFEST_NAME).read_text())
        manifest = Manifest(
            table_prefix=raw["table_prefix"],
            files={key: FileEntry(**entry) for key, entry in raw["files"].items()},
            published=raw["published"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest if manifest.table_prefix == table_prefix else None


def save_manifest(folder: Path, manifest: Manifest) -> None:
    document = {
        "table_prefix": manifest.table_prefix,
        "files": {key: {"fragment": e.fragment, "parts": e.parts} for key, e in manifest.files.items()},
        "published": manifest.published,
    }
    partial = folder / f"{MANIFEST_NAME}.partial"
    partial.write_text(json.dumps(document))
    partial.replace(folder / MANIFEST_NAME)


def forget_manifest(folder: Path) -> None:
    (folder / MANIFEST_NAME).unlink(missing_ok=True)


def supports_incremental(table: AnalyticTable) -> bool:
    """Whether a table's output can be rebuilt partition by partition with the same result."""
    if not table.partition_keys:
        return False
    if any(c.assertions is not None and c.assertions.unique for c in table.schema_):
        return False
    return not table.dedup_keys or set(table.partition_keys) <= set(table.dedup_keys)


def _jsonable(value: object) -> object:
    return {"date": value.isoformat()} if isinstance(value, dt.date) else value


def _literal(value: object, dtype: pl.DataType) -> pl.Expr:
    if isinstance(value, dict):
        return pl.lit(value["date"]).str.to_date("%Y-%m-%d")
    return pl.lit(value, dtype=dtype)


def fragment_parts(fragments: dict[str, Path], keys: list[str]) -> dict[str, list[list[object]]]:
    """The distinct partition key tuples of each fragment (by file key), JSON-ready, in one query."""
    if not fragments:
        return {}
    distinct = (
        scan_fragments(list(fragments.values()), path_column="__fragment")
        .select(["__fragment", *keys])
        .unique(maintain_order=True)
        .collect()
    )
    return parts_by_file(distinct, {str(path): key for key, path in fragments.items()})


def parts_by_file(distinct: pl.DataFrame, key_of_path: dict[str, str]) -> dict[str, list[list[object]]]:
    """JSON-ready partition key tuples per file key, from distinct (path, *keys) rows."""
    parts: dict[str, list[list[object]]] = {key: [] for key in key_of_path.values()}
    for path, *values in distinct.iter_rows():
        parts[key_of_path[path]].append([_jsonable(v) for v in values])
    return parts


def partition_frame(fragments: list[Path], keys: list[str], values: list[object]) -> pl.LazyFrame:
    """The rows of one partition across fragments (in fragment order), key columns dropped."""
    frame = scan_fragments(fragments)
    schema = frame.collect_schema()
    condition = pl.all_horizontal(
        [pl.col(k) == _literal(v, schema[k]) for k, v in zip(keys, values, strict=True)]
    )
    return frame.filter(condition).drop(keys)
