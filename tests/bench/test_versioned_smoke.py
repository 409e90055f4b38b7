"""A smoke run of the versioned-tables bench (``bench.versioned``), so it cannot rot: on 1.5 MB of generated
CSV in 3 files, the API's runs (first, one new file, one changed file, nothing new, two small runs and a
compaction) must leave exactly the rows the Polars script writes over the same raw files, commit one version
per run with new data and none without. Benchmarks are not tests: nothing here looks at timings.
"""

import json
from pathlib import Path

from bench.versioned import report_lines, run_versioned

STEPS = ("first_run", "new_file", "changed_file", "nothing_new")


def test_versioned_bench_runs_and_its_rows_are_right(tmp_path: Path) -> None:
    result = run_versioned(
        tmp_path, size_mb=1.5, files=3, new_rows=300, small_runs=2, small_rows=50, scan_repeat=1
    )

    assert json.loads((tmp_path / "versioned.json").read_text()) == json.loads(json.dumps(result))
    assert result["correctness"]["same"], result["correctness"]["differences"]
    assert result["small_runs"]["final_correctness"]["same"], result["small_runs"]["final_correctness"]
    assert all(result["checks"].values()), result["checks"]
    for step in STEPS:
        figures = result[step]
        assert figures["api_s"] > 0 and not figures["response"]["errors"], (step, figures)
        assert figures["api_tree_peak_rss_mb"] > 0 and figures["api_cpu_s"] > 0
    for step in STEPS[:3]:
        assert result[step]["ratio"] > 0 and result[step]["cpu_ratio"] > 0
    assert [result[s]["version_after"] for s in STEPS] == [0, 1, 2, 2]
    assert [result[s]["new_version"] for s in STEPS] == [True, True, True, False]
    assert result["first_run"]["response"]["files_processed"] == 3
    assert result["nothing_new"]["response"]["partitions_written"] == 0
    assert set(result["targets"]) == {
        "first_run_ratio",
        "first_run_peak_rss_mb",
        "new_file_ratio",
        "changed_file_ratio",
        "nothing_new_s",
    }
    small = result["small_runs"]
    assert small["runs"] == 2 and small["api_s"]["n"] == 2
    assert small["version_after_compaction"] == small["version_before_compaction"] + 1
    assert 0 < small["data_files_after"] < small["data_files_before"]
    rows = result["correctness"]["rows"]["engine"] + small["rows_added"]
    assert small["before"]["polars_rows"] == small["after"]["duckdb_rows"] == rows
    assert any("first run" in line for line in report_lines(result))
