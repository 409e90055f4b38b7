"""The benchmark suite in one command: ``python -m bench.run``.

Per input size it generates (or reuses) seeded transaction CSVs, runs our engine (``bench.engine_run``),
the hand-written Polars script (``bench.baseline_polars``) and the DuckDB SQL (``bench.baseline_duckdb``),
each as its own process, checks that the three outputs hold the same rows, and prints wall time, rows/s,
MB/s, peak RSS, CPU time and the engine's ratios to each baseline. Below 1 GB every tool runs ``--repeat``
times, interleaved, and the medians are kept; 1 GB and above run once. Then, each skippable: incremental
runs after adding 1 file to 1,000 small monthly statements (a next-month file, then a two-year one); the
rows endpoint's streaming rate and the server's memory on the largest table; the jobs list's latency with
1,000 runs in Dagster storage; and Dagster's overhead around a tiny run. Every store and Dagster home is
fresh, so no earlier run's table is measured. Data is cached under ``--workdir`` (``bench/data``,
git-ignored), child logs go to its ``logs/``, and the figures to its ``results.json``.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.api_server import serve_api
from bench.compare import compare_outputs
from bench.generate import DAYS, START, ensure_dataset, file_seed, month_span, write_transactions
from bench.measure import Measured, RssSampler, child_env, proc_status_mb, run_child, threads
from bench.spending import SLUG, TABLE
from bench.stores import dagster_home, prepare_store, raw_dir, table_dir, tiny_store, warm_page_cache

BYTES_PER_FILE = 50_000_000  # generated data sets are split into files of about 50 MB
TINY_SLUG = "spending"  # the template with its own seed file: a run whose engine work takes milliseconds


class Bench:
    """One benchmark run's working directory: cached data, this run's stores, child logs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.runs = workdir / "runs"
        self.raw = workdir / "raw"
        (workdir / "logs").mkdir(parents=True, exist_ok=True)

    def log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def child(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> Measured:
        return run_child(module, list(args), env=env, log=self.log(name))

    def engine(self, name: str, store_root: Path, *, incremental: bool = False) -> Measured:
        extra = ["--incremental"] if incremental else []
        return self.child(name, "bench.engine_run", str(store_root), SLUG, *extra)

    def polars(self, name: str, raw: Path, out: Path) -> Measured:
        shutil.rmtree(out, ignore_errors=True)
        return self.child(name, "bench.baseline_polars", str(raw), str(out))

    def duckdb(self, name: str, raw: Path, out: Path) -> Measured:
        shutil.rmtree(out, ignore_errors=True)
        return self.child(name, "bench.baseline_duckdb", str(raw), str(out), "--threads", str(threads()))

    def probe(self, name: str, store_root: Path, home: Path, *args: str) -> dict:
        env = child_env(
            KARET_DATA_DIR=str(store_root), DAGSTER_HOME=str(home), S3_BUCKET="", KARET_DEPLOYMENT="embedded"
        )
        return self.child(name, "bench.dagster_probe", *args, env=env).json()


def bench_size(bench: Bench, megabytes: float, repeat: int = 1) -> dict:
    """Engine vs Polars vs DuckDB on ``megabytes`` of CSV: medians of ``repeat`` interleaved runs."""
    label = f"{megabytes:g}mb"
    files = max(1, round(megabytes * 1e6 / BYTES_PER_FILE))
    dataset = ensure_dataset(bench.raw / label, int(megabytes * 1e6), files)
    warm_page_cache(dataset.files)
    store_root = bench.runs / f"store-{label}"
    outputs = {
        "engine": table_dir(store_root),
        **{t: bench.runs / f"{t}-{label}" for t in ("polars", "duckdb")},
    }
    measured: dict[str, list[Measured]] = {tool: [] for tool in outputs}
    for _ in range(repeat):
        prepare_store(store_root, dataset.files)
        measured["engine"].append(bench.engine(f"engine-{label}", store_root))
        measured["polars"].append(bench.polars(f"polars-{label}", dataset.folder, outputs["polars"]))
        measured["duckdb"].append(bench.duckdb(f"duckdb-{label}", dataset.folder, outputs["duckdb"]))
    agreement = compare_outputs(outputs)
    input_mb = dataset.bytes / 1e6
    tools = {}
    for tool, results in measured.items():
        wall = statistics.median(m.wall_s for m in results)
        tools[tool] = {
            "wall_s": wall,
            "walls_s": [m.wall_s for m in results],
            "cpu_s": statistics.median(m.cpu_s for m in results),
            "rows_per_s": dataset.rows / wall,
            "mb_per_s": input_mb / wall,
            "peak_rss_mb": max(m.peak_rss_mb for m in results),
        }
    tools["engine"]["in_process_s"] = statistics.median(m.json()["engine_s"] for m in measured["engine"])
    return {
        "size_mb": megabytes,
        "input_mb": input_mb,
        "files": len(dataset.files),
        "rows": dataset.rows,
        "repeat": repeat,
        "tools": tools,
        "engine_over_polars": tools["engine"]["wall_s"] / tools["polars"]["wall_s"],
        "engine_over_duckdb": tools["engine"]["wall_s"] / tools["duckdb"]["wall_s"],
        "engine_over_polars_cpu": tools["engine"]["cpu_s"] / tools["polars"]["cpu_s"],
        "engine_over_duckdb_cpu": tools["engine"]["cpu_s"] / tools["duckdb"]["cpu_s"],
        "rows_out": agreement.rows,
        "same_rows": agreement.same,
        "differences": agreement.details,
    }


def bench_incremental(bench: Bench, files: int = 1000, file_kb: int = 20) -> dict:
    """A full engine run over ``files`` small monthly statements, then one more file and a run, twice.

    The first added file is the next monthly statement (it touches one partition), the second one spans
    both years (it touches every partition, the worst case). Each result must equal a full transform.
    """
    per_file = file_kb * 1000
    folder = bench.raw / f"monthly-{files}x{file_kb}kb"
    dataset = ensure_dataset(folder, files * per_file, files, monthly=True)
    extra_dir = bench.raw / f"monthly-extra-{file_kb}kb"
    added = {
        "monthly_file": (extra_dir / f"tx-{files:05d}.csv", month_span(files)),
        "two_year_file": (extra_dir / f"tx-{files + 1:05d}.csv", (START, DAYS)),
    }
    for index, (path, span) in enumerate(added.values()):
        write_transactions(path, per_file, file_seed(7, files + index), span)
    warm_page_cache([*dataset.files, *(path for path, _ in added.values())])
    store_root = bench.runs / "store-incremental"
    stores = prepare_store(store_root, dataset.files)
    full = bench.engine("incremental-full", store_root)
    result: dict = {
        "files": files,
        "file_kb": file_kb,
        "full": {
            "wall_s": full.wall_s,
            "cpu_s": full.cpu_s,
            "in_process_s": full.json()["engine_s"],
            "peak_rss_mb": full.peak_rss_mb,
        },
    }
    raw_prefix = raw_dir(store_root).relative_to(store_root).as_posix()
    for name, (path, _) in added.items():
        # An upload through the store, as the API or S3 would deliver the file.
        stores.lake.put_file(f"{raw_prefix}/{path.name}", path)
        run = bench.engine(f"incremental-{name}", store_root, incremental=True)
        expected = bench.runs / "polars-incremental"
        bench.polars(f"incremental-{name}-polars", raw_dir(store_root), expected)
        agreement = compare_outputs({"engine": table_dir(store_root), "polars": expected})
        report = run.json()
        result[name] = {
            "wall_s": run.wall_s,
            "cpu_s": run.cpu_s,
            "in_process_s": report["engine_s"],
            "peak_rss_mb": run.peak_rss_mb,
            "fraction_in_process": report["engine_s"] / result["full"]["in_process_s"],
            "fraction_wall": run.wall_s / full.wall_s,
            "files_parsed": report["files_parsed"],
            "partitions_written": report["partitions_written"],
            "rows_out": agreement.rows,
            "same_rows": agreement.same,
            "differences": agreement.details,
        }
    return result


def _count_rows(chunks: Iterator[bytes], start: float) -> tuple[int, int, float]:
    """Rows, bytes and seconds to the first byte of a streamed ``{"rows": [...]}`` document."""
    # Every row is a JSON object and so starts with `{"`; inside strings quotes are escaped, so the pair
    # occurs nowhere else but in the document's own `{"rows":`. A pair split across chunks is counted once.
    pairs, size, tail, first_byte = 0, 0, b"", 0.0
    for chunk in chunks:
        if not size:
            first_byte = time.perf_counter() - start
        pairs += (tail + chunk).count(b'{"') - tail.count(b'{"')
        tail = chunk[-1:]
        size += len(chunk)
    return pairs - 1, size, first_byte


def bench_rows_stream(bench: Bench, store_root: Path) -> dict:
    """``GET /api/p/<slug>/tables/transactions/rows`` of a whole table: rows/s and the server's RSS."""
    home = dagster_home(bench.runs / "dagster-rows")
    url = f"/api/p/{SLUG}/tables/{TABLE}/rows"
    with serve_api(store_root, home, log=bench.log("api-rows")) as server, server.client(None) as client:
        client.get(f"/api/p/{SLUG}/tables").raise_for_status()  # the app is warm before measuring
        start = time.perf_counter()
        with RssSampler(server.pid) as rss, client.stream("GET", url) as response:
            response.raise_for_status()
            rows, size, first_byte = _count_rows(response.iter_raw(1 << 20), start)
        seconds = time.perf_counter() - start
        hwm = proc_status_mb(server.pid, "VmHWM")
    return {
        "store": store_root.name,
        "rows": rows,
        "seconds": seconds,
        "first_byte_s": first_byte,
        "rows_per_s": rows / seconds,
        "body_mb": size / 1e6,
        "mb_per_s": size / 1e6 / seconds,
        "server_rss_before_mb": rss.first_mb,
        "server_rss_peak_mb": rss.peak_mb,
        "server_vmhwm_mb": hwm,
    }


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def bench_jobs_list(bench: Bench, runs: int = 1000, real_runs: int = 3, requests: int = 100) -> dict:
    """``GET /api/p/<slug>/jobs`` latency with ``runs`` runs of the pipeline in a fresh Dagster storage."""
    store_root = tiny_store(bench.runs / "store-jobs", TINY_SLUG)
    home = dagster_home(bench.runs / "dagster-jobs")
    bench.probe("jobs-real-runs", store_root, home, "launch", TINY_SLUG, str(real_runs))
    bench.probe("jobs-seed-runs", store_root, home, "seed-runs", TINY_SLUG, str(runs - real_runs))
    result: dict = {"runs": runs, "real_runs": real_runs}
    with serve_api(store_root, home, log=bench.log("api-jobs")) as server, server.client() as client:
        for name, query, count in (
            ("default_page", "", requests),
            ("all_runs", f"?limit={runs}", requests // 4),
        ):
            url = f"/api/p/{TINY_SLUG}/jobs{query}"
            for _ in range(3):
                client.get(url).raise_for_status()
            latencies = []
            for _ in range(count):
                start = time.perf_counter()
                response = client.get(url)
                latencies.append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
            result[name] = {
                "jobs_returned": len(response.json()["jobs"]),
                "requests": count,
                "p50_ms": statistics.median(latencies),
                "p95_ms": _p95(latencies),
            }
    return result


def bench_dagster_overhead(bench: Bench, repeat: int = 5) -> dict:
    """Submit → engine start → SUCCESS of tiny runs through ``execute_pipeline_run``, default instance."""
    store_root = tiny_store(bench.runs / "store-dagster", TINY_SLUG)
    home = dagster_home(bench.runs / "dagster-overhead")
    result = bench.probe("dagster-overhead", store_root, home, "launch", TINY_SLUG, str(repeat))
    for key in ("cold", "warm_median"):
        m = result[key]
        m["engine_s"] = m["engine_end"] - m["engine_start"]
        m["overhead_s"] = m["returned"] - m["engine_s"]
    return result


def _largest_table(bench: Bench) -> Path | None:
    stores = [p for p in bench.runs.glob("store-*mb") if table_dir(p).exists()]
    return max(stores, key=lambda p: float(p.name[len("store-") : -len("mb")]), default=None)


def _machine() -> dict:
    models = [
        line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
    ]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu": models[0].split(":", 1)[1].strip() if models else platform.processor(),
        "polars_max_threads": threads(),
        "load_avg_start": os.getloadavg(),
    }


def _section(results: dict, title: str, lines: list[str]) -> None:
    # The 1-minute load average as each section ends says whether other work shared the machine meanwhile.
    load = os.getloadavg()[0]
    results.setdefault("load_avg_after", {})[title] = load
    sys.stdout.write("\n".join(["", f"== {title} (load average {load:.2f})", *lines]) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10,100,1000", help="MB of CSV input, comma-separated ('' for none)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool below 1 GB; the median is kept")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--small-file-kb", type=int, default=20)
    parser.add_argument("--jobs-runs", type=int, default=1000)
    for section in ("incremental", "rows", "jobs", "dagster"):
        parser.add_argument(f"--no-{section}", action="store_true", help=f"skip the {section} measurement")
    args = parser.parse_args(argv)
    bench = Bench(args.workdir.resolve())
    results: dict = {"machine": _machine(), "sizes": []}
    sys.stdout.write("\n".join(report.machine(results["machine"])) + "\n")

    for size in (float(s) for s in args.sizes.split(",") if s.strip()):
        results["sizes"].append(bench_size(bench, size, repeat=args.repeat if size < 1000 else 1))
        _section(results, f"{size:g} MB: engine vs Polars vs DuckDB", report.size(results["sizes"][-1]))
    if not args.no_incremental:
        results["incremental"] = bench_incremental(bench, args.small_files, args.small_file_kb)
        title = f"incremental: 1 file added to {args.small_files} monthly files of {args.small_file_kb} KB"
        _section(results, title, report.incremental(results["incremental"]))
    if not args.no_rows:
        largest = _largest_table(bench)
        if largest is None:
            _section(results, "rows streaming skipped", ["no engine table in the workdir: run a size first"])
        else:
            results["rows_stream"] = bench_rows_stream(bench, largest)
            title = f"GET …/tables/{TABLE}/rows on {largest.name}"
            _section(results, title, report.rows_stream(results["rows_stream"]))
    if not args.no_jobs:
        results["jobs_list"] = bench_jobs_list(bench, args.jobs_runs)
        title = f"GET …/jobs with {args.jobs_runs} runs in Dagster storage"
        _section(results, title, report.jobs_list(results["jobs_list"]))
    if not args.no_dagster:
        results["dagster_overhead"] = bench_dagster_overhead(bench)
        title = "Dagster overhead: execute_pipeline_run of a tiny pipeline on the default instance"
        _section(results, title, report.dagster_overhead(results["dagster_overhead"]))

    results["machine"]["load_avg_end"] = os.getloadavg()
    _section(results, "done", [f"figures in {bench.workdir / 'results.json'}"])
    (bench.workdir / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
