"""Memory as data grows (issue 21): the first run through the API at several sizes, beside the script.

``python -m bench.memory [--sizes-gb 1 5] [--rows-per-file 400000] [--workdir bench/data]``

Per size a data set of files of ``--rows-per-file`` generated bank-statement rows (about 20 MB each, dated
over two years) is generated once and cached under ``<workdir>/raw``; a fresh store and Dagster home get
the Spending Tracker pipeline, and ``POST /jobs/run`` runs it through the API as a user does
(``bench.api_server``, ``POLARS_MAX_THREADS=2`` unless set) while the API's process tree RSS is sampled.
Then the hand-written Polars script (``bench.baseline_polars``) redoes the same transform as its own
process. Printed per size: wall time and peak RSS of both, the time ratio, and the time relative to the
smallest size (linear growth is the target). ``--sizes-gb 20`` works on a 24 GB machine and takes about
half an hour; it is left out by default. Figures go to ``<workdir>/memory.json``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from bench.api_server import serve_api
from bench.generate import ensure_dataset
from bench.run import Bench, _machine
from bench.spending import SLUG
from bench.stores import dagster_home, prepare_store, warm_page_cache
from bench.versioned import VersionedBench, dataset_label

TARGETS = {"peak_rss_mb": 1500.0, "time_ratio": 1.10, "growth_5gb": 5.5, "growth_20gb": 22.0}
_BYTES_PER_ROW = 50  # the generator's average, to size a file of --rows-per-file rows


def bench_memory(workdir: Path, sizes_gb: list[float], rows_per_file: int) -> dict:
    bench = Bench(workdir.resolve())
    results: dict = {"machine": _machine(), "rows_per_file": rows_per_file, "sizes": []}
    for size_gb in sizes_gb:
        size_mb = size_gb * 1000
        files = max(1, round(size_mb * 1e6 / (rows_per_file * _BYTES_PER_ROW)))
        label = dataset_label(size_mb, files)
        _say(f"{label}: data set (generated once, then cached)")
        dataset = ensure_dataset(bench.raw / label, int(size_mb * 1e6), files)
        warm_page_cache(dataset.files)
        # VersionedBench names the store, Dagster home and API log after its label; the same names here.
        named = f"memory-{label}"
        store_root = bench.runs / f"store-versioned-{named}"
        stores = prepare_store(store_root, dataset.files)
        home = dagster_home(bench.runs / f"dagster-versioned-{named}")
        with serve_api(store_root, home, log=bench.log(f"versioned-api-{named}")) as server:
            with server.client(None) as client:
                client.get(f"/api/p/{SLUG}/tables").raise_for_status()
                _say(f"{label}: POST /jobs/run, then the script")
                run = VersionedBench(bench, named, stores, server, client)
                first = run.against_script(run.run("first-run"), named)
        results["sizes"].append(
            {
                "label": label,
                "input_mb": dataset.bytes / 1e6,
                "files": len(dataset.files),
                "rows": dataset.rows,
                "api_s": first["api_s"],
                "api_tree_peak_rss_mb": first["api_tree_peak_rss_mb"],
                "script_s": first["script"]["wall_s"],
                "script_peak_rss_mb": first["script"]["peak_rss_mb"],
                "ratio": first["ratio"],
                "cpu_ratio": first["cpu_ratio"],
                "partitions_written": first["response"]["partitions_written"],
            }
        )
        _say(_line(results["sizes"][-1], results["sizes"][0]))
    (bench.workdir / "memory.json").write_text(json.dumps(results, indent=2))
    return results


def _line(size: dict, smallest: dict) -> str:
    growth = size["api_s"] / smallest["api_s"]
    scale = size["input_mb"] / smallest["input_mb"]
    return (
        f"{size['label']:>12}  API {size['api_s']:7.1f} s  {size['api_tree_peak_rss_mb']:7.0f} MB peak | "
        f"script {size['script_s']:7.1f} s  {size['script_peak_rss_mb']:6.0f} MB | ratio {size['ratio']:.2f} "
        f"(cpu {size['cpu_ratio']:.2f}) | time ×{growth:.2f} for data ×{scale:.2f}"
    )


def _say(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[1, 5])
    parser.add_argument("--rows-per-file", type=int, default=400_000)
    parser.add_argument("--workdir", type=Path, default=Path("bench/data"))
    args = parser.parse_args(argv)
    results = bench_memory(args.workdir, args.sizes_gb, args.rows_per_file)
    for size in results["sizes"]:
        sys.stdout.write(_line(size, results["sizes"][0]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
