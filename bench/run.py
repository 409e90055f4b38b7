"""One benchmark run: generate data, then time our engine against a hand-written Polars baseline.

Each measurement is a separate process (so peak RSS is its own), with ``POLARS_MAX_THREADS=2``. Usage:
``python -m bench.run [--sizes 10,100] [--workdir bench/data]``; sizes are MB of CSV input.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from bench.generate import write_dataset
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template

SLUG = "bench"


def _measure(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    env = {**os.environ, "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, args)
    return wall, usage.ru_maxrss / 1024


def _rows(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(str(folder / "**/*.parquet"), hive_partitioning=True)


def bench_size(workdir: Path, megabytes: int) -> dict[str, float]:
    store_root = workdir / f"store-{megabytes}"
    raw = store_root / "pipelines" / SLUG / "transactions"
    if not raw.exists():
        shutil.rmtree(store_root, ignore_errors=True)
        install_template(build_stores(Settings(data_dir=store_root, s3_bucket="")), SLUG, "spending")
        (raw / "seed.csv").unlink()
        write_dataset(raw, megabytes * 1_000_000, files=max(1, megabytes // 50))
    input_mb = sum(p.stat().st_size for p in raw.glob("*.csv")) / 1e6
    engine_wall, engine_rss = _measure(["-m", "bench.engine_run", str(store_root), SLUG])
    baseline_out = workdir / f"baseline-{megabytes}"
    shutil.rmtree(baseline_out, ignore_errors=True)
    base_wall, base_rss = _measure(["-m", "bench.baseline_polars", str(raw), str(baseline_out)])
    engine_rows = _rows(store_root / "pipelines" / SLUG / "clean" / "transactions")
    baseline_rows = _rows(baseline_out)
    columns = sorted(engine_rows.columns)
    same = engine_rows.select(columns).sort(columns).equals(baseline_rows.select(columns).sort(columns))
    rows = engine_rows.height
    return {
        "input_mb": input_mb,
        "rows": rows,
        "engine_s": engine_wall,
        "engine_rows_per_s": rows / engine_wall,
        "engine_mb_per_s": input_mb / engine_wall,
        "engine_peak_rss_mb": engine_rss,
        "polars_s": base_wall,
        "polars_peak_rss_mb": base_rss,
        "ratio_engine_polars": engine_wall / base_wall,
        "same_rows": float(same),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--workdir", default="bench/data")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    header = f"{'size':>6} {'rows':>10} {'engine s':>9} {'rows/s':>11} {'MB/s':>7} {'RSS MB':>7} "
    header += f"{'polars s':>9} {'RSS MB':>7} {'ratio':>6} same"
    sys.stdout.write(header + "\n")
    for size in (int(s) for s in args.sizes.split(",")):
        r = bench_size(workdir, size)
        sys.stdout.write(
            f"{size:>4}MB {int(r['rows']):>10} {r['engine_s']:>9.2f} {r['engine_rows_per_s']:>11,.0f} "
            f"{r['engine_mb_per_s']:>7.1f} {r['engine_peak_rss_mb']:>7.0f} {r['polars_s']:>9.2f} "
            f"{r['polars_peak_rss_mb']:>7.0f} {r['ratio_engine_polars']:>6.2f} {bool(r['same_rows'])}\n"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
