"""A smoke run of the benchmark's size comparison, so the bench cannot rot: engine, Polars and DuckDB on
1.5 MB of generated CSV must write the same rows. Benchmarks are not tests: nothing here looks at timings.
"""

from pathlib import Path

from bench.run import Bench, bench_size


def test_engine_and_both_baselines_write_the_same_rows(tmp_path: Path) -> None:
    result = bench_size(Bench(tmp_path), megabytes=1.5)

    assert result["same_rows"], result["differences"]
