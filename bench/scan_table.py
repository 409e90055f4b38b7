"""Full-table scans of a Delta table's current version, with Polars and with DuckDB; one JSON line out.

Polars reads the table as a user would, ``pl.scan_delta(...).select(pl.len(), pl.col("amount").sum())``
(the log is read again on every scan). DuckDB gets the current version's data files as a list for
``read_parquet``: its ``delta`` extension is not bundled and ``INSTALL delta`` would fetch it from the
network, so it is not used. Each scan runs ``--repeat`` times; every time is reported (the first one is
the coldest). Usage: ``python -m bench.scan_table TABLE_DIR [--repeat 3]``.
"""

import argparse
import json
import sys
import time

import duckdb
import polars as pl
from deltalake import DeltaTable

from bench.measure import threads


def polars_scan(uri: str) -> tuple[int, float]:
    rows, total = pl.scan_delta(uri).select(pl.len(), pl.col("amount").sum()).collect().row(0)
    return int(rows), float(total)


def duckdb_scan(connection: duckdb.DuckDBPyConnection, uri: str) -> tuple[int, float, int]:
    files = DeltaTable(uri).file_uris()  # the current version's data files, from the log
    rows, total = connection.execute("SELECT count(*), sum(amount) FROM read_parquet(?)", [files]).fetchone()  # type: ignore[misc]
    return int(rows), float(total), len(files)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("table_dir")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads()}")
    result: dict = {"polars_s": [], "duckdb_s": []}
    for _ in range(args.repeat):
        start = time.perf_counter()
        result["polars_rows"], result["polars_amount"] = polars_scan(args.table_dir)
        result["polars_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        result["duckdb_rows"], result["duckdb_amount"], result["files"] = duckdb_scan(
            connection, args.table_dir
        )
        result["duckdb_s"].append(time.perf_counter() - start)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
