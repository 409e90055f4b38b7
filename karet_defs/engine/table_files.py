"""What a table's current data files hold, read from their statistics (the rows of ``delta.active_files``):
the files holding rows of a mapping (from given raw files), the rows the table keeps of a mapping, and the
removal of rows that leave the table, rewriting the files that also hold rows which stay (files merged by
compaction hold the rows of several mappings and raw files)."""

import urllib.parse
from collections.abc import Mapping as MappingOf
from pathlib import Path

import polars as pl

from karet_defs.engine import delta
from karet_defs.engine.publishing import TableTarget
from karet_defs.scratch import scratch_dir

# Per mapping, the raw files whose rows leave the table (None: all of them).
Leaving = MappingOf[str, set[str] | None]


def files_of(active: pl.DataFrame, mapping_id: str, sources: set[str] | None) -> list[dict[str, object]]:
    """Data files holding rows of ``mapping_id`` (from ``sources`` only, when given)."""
    if active.height == 0:
        return []
    return [row for row in active.iter_rows(named=True) if _holds(row, mapping_id, sources)]


def kept_rows(
    target: TableTarget, active: pl.DataFrame, mapping_id: str, kept: set[str]
) -> pl.LazyFrame | None:
    """The rows the table keeps of ``mapping_id`` (from the ``kept`` raw files), read from its data files."""
    files = files_of(active, mapping_id, kept)
    if not files:
        return None
    location = target.location
    uris = [f"{location.uri}/{urllib.parse.unquote(str(row['path']))}" for row in files]
    frame = pl.scan_parquet(
        uris, storage_options=location.reader_options(), missing_columns="insert", extra_columns="ignore"
    )
    return frame.filter(
        (pl.col(delta.MAPPING_COLUMN) == mapping_id) & pl.col(delta.SOURCE_COLUMN).is_in(sorted(kept))
    )


def remove_rows(
    target: TableTarget, active: pl.DataFrame, leaving: Leaving
) -> tuple[list[dict[str, object]], list[delta.DataFile]]:
    """The data files to remove for the ``leaving`` rows, and staged rewrites of those that also hold rows
    which stay."""
    removed: dict[str, dict[str, object]] = {}
    for mapping_id, sources in leaving.items():
        for row in files_of(active, mapping_id, sources):
            removed.setdefault(str(row["path"]), row)
    rewritten: list[delta.DataFile] = []
    for row in removed.values():
        if _exact_owner(row) is None:
            rewritten += _rewrite_without(target, row, leaving)
    return list(removed.values()), rewritten


def _rewrite_without(
    target: TableTarget, row: MappingOf[str, object], leaving: Leaving
) -> list[delta.DataFile]:
    relative = urllib.parse.unquote(str(row["path"]))
    key = target.prefix + relative
    leaves = pl.lit(False)
    for mapping_id, sources in leaving.items():
        rule = pl.col(delta.MAPPING_COLUMN) == mapping_id
        if sources is not None:
            rule = rule & pl.col(delta.SOURCE_COLUMN).is_in(sorted(sources))
        leaves = leaves | rule.fill_null(False)
    folder = relative.rpartition("/")[0]
    name = delta.data_file_name("rewrite", relative)
    target_relative = f"{folder}/{name}" if folder else name
    staged = target.staging_root / target_relative
    staged.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir("rewrite") as tmp:
        local = target.warehouse.local_path(key)
        if local is None:
            local = Path(tmp) / "in.parquet"
            target.warehouse.download(key, local)
        pl.scan_parquet(local).filter(~leaves).sink_parquet(
            staged, compression="zstd", statistics=True, engine="streaming"
        )
    partition_values = delta.partition_values_of(row, target.partition_keys)
    described = delta.describe_file(staged, target_relative, partition_values, "", "")
    if described.rows == 0:
        staged.unlink(missing_ok=True)
        return []
    return [described]


def _exact_owner(row: MappingOf[str, object]) -> tuple[str, str] | None:
    """(mapping, raw file) when statistics show every row of the data file has that pair."""
    low_m, high_m = row.get(f"min.{delta.MAPPING_COLUMN}"), row.get(f"max.{delta.MAPPING_COLUMN}")
    low_s, high_s = row.get(f"min.{delta.SOURCE_COLUMN}"), row.get(f"max.{delta.SOURCE_COLUMN}")
    if low_m is None or low_m != high_m or low_s is None or low_s != high_s:
        return None
    return str(low_m), str(low_s)


def _holds(row: MappingOf[str, object], mapping_id: str, sources: set[str] | None) -> bool:
    owner = _exact_owner(row)
    if owner is not None:
        return owner[0] == mapping_id and (sources is None or owner[1] in sources)
    low_m, high_m = row.get(f"min.{delta.MAPPING_COLUMN}"), row.get(f"max.{delta.MAPPING_COLUMN}")
    if low_m is not None and high_m is not None and not (str(low_m) <= mapping_id <= str(high_m)):
        return False
    if sources is None:
        return True
    low_s, high_s = row.get(f"min.{delta.SOURCE_COLUMN}"), row.get(f"max.{delta.SOURCE_COLUMN}")
    if low_s is None or high_s is None:
        return True
    return any(str(low_s) <= source <= str(high_s) for source in sources)
