"""Do several outputs (Hive-partitioned Parquet folders or Delta tables) hold the same rows, in any order?

Each output is read with its partition columns restored from the path and cast to the declared schema (a
Hive reader infers path values, and writers differ in what they put in the files). A Delta table (a folder
with a ``_delta_log``) is read at its current version with ``pl.scan_delta``, so files that earlier versions
removed but that are still on disk do not count, and its hidden columns are left out. Each output is then
reduced to one 64-bit hash per row. Equal sorted hash vectors mean equal multisets of rows; that keeps the
check to a few hundred MB at 1 GB of input instead of sorting three full tables. On a mismatch of a small
output, a few rows missing from each side are shown.
"""

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from bench.spending import OUTPUT_SCHEMA

_DETAIL_MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class Agreement:
    rows: dict[str, int]
    same: bool
    details: list[str] = field(default_factory=list)


def read_output(folder: Path) -> pl.LazyFrame:
    """An output folder (Hive-partitioned Parquet or a Delta table) as a lazy frame of the declared schema."""
    if (folder / "_delta_log").is_dir():
        frame = pl.scan_delta(str(folder))
    else:
        frame = pl.scan_parquet(str(folder / "**" / "*.parquet"), hive_partitioning=True)
    return frame.select(pl.col(name).cast(getattr(pl, dtype)) for name, dtype in OUTPUT_SCHEMA.items())


def _row_hashes(folder: Path) -> pl.Series:
    hashed = read_output(folder).select(pl.struct(list(OUTPUT_SCHEMA)).hash(seed=0).alias("h"))
    return hashed.collect(engine="streaming").to_series().sort()


def compare_outputs(outputs: dict[str, Path]) -> Agreement:
    """Compare every output with the first one."""
    names = list(outputs)
    hashes = {name: _row_hashes(outputs[name]) for name in names}
    reference = names[0]
    details = []
    for name in names[1:]:
        if hashes[name].equals(hashes[reference]):
            continue
        details.append(f"{name} differs from {reference}")
        if max(len(hashes[name]), len(hashes[reference])) <= _DETAIL_MAX_ROWS:
            details += _sample_differences(outputs[reference], outputs[name], reference, name)
    return Agreement({n: len(h) for n, h in hashes.items()}, not details, details)


def _sample_differences(left: Path, right: Path, left_name: str, right_name: str) -> list[str]:
    a, b = read_output(left).collect(), read_output(right).collect()
    keys = list(OUTPUT_SCHEMA)
    only_a = a.join(b, on=keys, how="anti", nulls_equal=True).head(3)
    only_b = b.join(a, on=keys, how="anti", nulls_equal=True).head(3)
    return [f"only in {left_name}: {r}" for r in only_a.rows()] + [
        f"only in {right_name}: {r}" for r in only_b.rows()
    ]
