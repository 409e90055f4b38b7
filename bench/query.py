"""The read side (issue 13's targets): SQL through ``karet_defs.query`` against DuckDB's own ``read_parquet``.

``python -m bench.query [--size-mb 1000] [--files 50] [--repeat 5] [--workdir bench/data]``

The Spending Tracker template runs once over the generated raw files (the engine in process, as pipeline
``bench`` on a local store); then, side by side in this process, with DuckDB at ``POLARS_MAX_THREADS``
threads (default 2) both ways:

1. a dashboard panel query (Spending Overview's "Top merchants") through ``run_query`` — a fresh locked-down
   connection, the Delta log read, a view over the version's files — against the same SQL over a plain
   DuckDB view of ``read_parquet`` on the current version's files (``hive_partitioning``) in a fresh
   connection too (the ratio; target ≤ 1.2×), and in one kept warm (reported beside it): medians of
   ``--repeat`` runs each;
2. every panel of the Spending Overview dashboard, its ``$period_from`` / ``$period_to`` bound to a range
   covering the data: p50 of the whole dashboard over ``--repeat`` passes (target ≤ 1 s at 100 MB);
3. 20 concurrent panel queries on 20 threads: errors (target none) and the process's peak RSS beside the
   configured ``DUCKDB_MEMORY_LIMIT``.

Generated files are cached under ``<workdir>/raw``; the figures go to ``<workdir>/query.json``.
"""

import argparse
import datetime as dt
import json
import math
import os
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import duckdb
import yaml
from deltalake import DeltaTable

from bench.generate import ensure_dataset
from bench.measure import RssSampler, threads
from bench.spending import SLUG
from bench.stores import prepare_store, table_dir
from bench.versioned import dataset_label
from karet_defs.engine.run import run_pipeline
from karet_defs.errors import KaretError
from karet_defs.query.engine import QueryLimits, run_query
from karet_defs.settings import Settings

PANEL_SQL = (
    "SELECT merchant AS label, SUM(amount) AS value FROM transactions "
    "WHERE amount > 0 GROUP BY merchant ORDER BY value DESC LIMIT 10"
)
PERIOD = {"period_from": dt.date(1900, 1, 1), "period_to": dt.date(2999, 12, 31)}
TARGETS = {"panel_ratio": 1.2, "dashboard_p50_s": 1.0, "concurrent_errors": 0}
CONCURRENT = 20
_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


def dashboard_queries() -> list[str]:
    """The SQL of every panel of the template's Spending Overview dashboard."""
    folder = resources.files("karet_defs") / "templates" / "spending" / "dashboards"
    document = yaml.safe_load((folder / "spending_overview.yaml").read_text())
    return [panel["query"] for panel in document["panels"]]


def bound(sql: str) -> dict[str, object]:
    return {name: PERIOD[name] for name in _PARAM.findall(sql)}


def _median_seconds(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_query_bench(workdir: Path, size_mb: float, files: int, repeat: int = 5) -> dict:
    raw = ensure_dataset(workdir / "raw" / dataset_label(size_mb, files), int(size_mb * 1e6), files)
    store_root = workdir / "query-store"
    stores = prepare_store(store_root, raw.files)
    start = time.perf_counter()
    run_pipeline(stores, SLUG)
    run_s = time.perf_counter() - start
    limits = QueryLimits.from_settings(Settings())
    limits = QueryLimits(limits.memory_limit, limits.timeout_seconds, limits.max_rows, threads())

    uris = DeltaTable(str(table_dir(store_root))).file_uris()

    def plain_connection() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(config={"threads": threads(), "memory_limit": limits.memory_limit})
        con.read_parquet(uris, hive_partitioning=True).create_view("transactions")
        return con

    warm = plain_connection()
    engine_rows = run_query(stores, SLUG, PANEL_SQL, limits=limits).rows
    plain_rows = warm.execute(PANEL_SQL).fetchall()
    engine_s = _median_seconds(lambda: run_query(stores, SLUG, PANEL_SQL, limits=limits), repeat)
    plain_s = _median_seconds(lambda: plain_connection().execute(PANEL_SQL).fetchall(), repeat)
    warm_s = _median_seconds(lambda: warm.execute(PANEL_SQL).fetchall(), repeat)

    panels = dashboard_queries()
    passes = []
    for _ in range(repeat):
        start = time.perf_counter()
        for sql in panels:
            run_query(stores, SLUG, sql, bound(sql), limits=limits)
        passes.append(time.perf_counter() - start)

    def one(_: int) -> str | None:
        try:
            run_query(stores, SLUG, PANEL_SQL, limits=limits)
        except KaretError as exc:
            return exc.code
        return None

    with RssSampler(os.getpid()) as rss, ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        start = time.perf_counter()
        failures = [code for code in pool.map(one, range(CONCURRENT)) if code is not None]
        concurrent_s = time.perf_counter() - start

    result = {
        "size_mb": size_mb,
        "files": files,
        "rows": raw.rows,
        "data_files": len(uris),
        "threads": threads(),
        "memory_limit": limits.memory_limit,
        "engine_run_s": run_s,
        "panel": {
            "engine_s": engine_s,
            "read_parquet_s": plain_s,
            "read_parquet_warm_s": warm_s,
            "ratio": engine_s / plain_s,
            "same_rows": _same(engine_rows, plain_rows),
        },
        "dashboard": {"panels": len(panels), "p50_s": statistics.median(passes), "passes_s": passes},
        "concurrent": {
            "queries": CONCURRENT,
            "errors": failures,
            "wall_s": concurrent_s,
            "peak_rss_mb": rss.peak_mb,
            "start_rss_mb": rss.first_mb,
        },
        "targets": {
            "panel_ratio": result_target(engine_s / plain_s, TARGETS["panel_ratio"]),
            "dashboard_p50_s": result_target(statistics.median(passes), TARGETS["dashboard_p50_s"]),
            "concurrent_errors": result_target(len(failures), TARGETS["concurrent_errors"]),
        },
    }
    (workdir / "query.json").write_text(json.dumps(result, indent=2))
    return result


def _same(rows: list, others: list) -> bool:
    # Sums of doubles differ in their last bits with the order DuckDB's threads add them in.
    return len(rows) == len(others) and all(
        len(a) == len(b)
        and all(
            x == y or (isinstance(x, float) and math.isclose(x, y, rel_tol=1e-9))
            for x, y in zip(a, b, strict=True)
        )
        for a, b in zip(rows, others, strict=True)
    )


def result_target(value: float, bound: float) -> dict:
    return {"value": value, "bound": bound, "met": value <= bound}


def report_lines(r: dict) -> list[str]:
    panel, board, conc = r["panel"], r["dashboard"], r["concurrent"]
    return [
        f"{r['size_mb']:g} MB in {r['files']} files, {r['rows']:,} rows, {r['data_files']} data files, "
        f"{r['threads']} threads, memory limit {r['memory_limit']}",
        f"panel query: engine {panel['engine_s']:.3f} s, read_parquet {panel['read_parquet_s']:.3f} s "
        f"(on a warm connection {panel['read_parquet_warm_s']:.3f} s), ratio {panel['ratio']:.2f} "
        f"(target ≤ {TARGETS['panel_ratio']}), same rows: {panel['same_rows']}",
        f"Spending Overview, {board['panels']} panels: p50 {board['p50_s']:.3f} s "
        f"(target ≤ {TARGETS['dashboard_p50_s']} s)",
        f"{conc['queries']} concurrent queries: {len(conc['errors'])} errors in {conc['wall_s']:.2f} s, "
        f"peak RSS {conc['peak_rss_mb']:.0f} MB (from {conc['start_rss_mb']:.0f} MB)",
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.query", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=1000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args(argv)
    results = run_query_bench(args.workdir, args.size_mb, args.files, args.repeat)
    sys.stdout.write("\n".join([*report_lines(results), f"figures in {args.workdir / 'query.json'}"]) + "\n")
    return results


if __name__ == "__main__":
    main()
