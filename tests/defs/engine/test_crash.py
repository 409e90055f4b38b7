"""A run killed with SIGKILL around its commit leaves the table at the old or the new version, readable, and
the next run converges to what a clean run gives."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from karet_defs.engine.run import run_pipeline
from tests.factories import col, make_pipeline, put_config, put_raw, read_table, table_version

SLUG = "crash"
CONFIG = make_pipeline(
    source_columns=[("month", "int64"), ("v", "string")],
    columns=[("month", col("month")), ("v", col("v"))],
    table_schema=[{"name": "month", "type": "int64"}, {"name": "v", "type": "string"}],
    partition_keys=["month"],
)
# The child stops just before or just after its Delta commit: every data file of the run is written.
CHILD = textwrap.dedent(
    """
    import sys, time
    from karet_defs.settings import Settings
    from karet_defs.store.factory import build_stores
    from karet_defs.engine import delta, run

    real_commit, stop = delta.commit, sys.argv[3]
    def commit(*args, **kwargs):
        if stop == "before":
            print("STOPPED", flush=True)
            time.sleep(60)
        version = real_commit(*args, **kwargs)
        print("STOPPED", flush=True)
        time.sleep(60)
        return version
    delta.commit = commit
    run.run_pipeline(build_stores(Settings(data_dir=sys.argv[1], s3_bucket="")), sys.argv[2])
    """
)


def _rows(n: int, tag: str) -> str:
    return "month,v\n" + "".join(f"{m},{tag}{i}\n" for m in (1, 2, 3) for i in range(n))


@pytest.mark.parametrize("stop", ["before", "after"])
def test_sigkill_around_the_commit_leaves_old_or_new_version_and_rerun_converges(
    local_settings, local_stores, stop
):
    put_config(local_stores, SLUG, CONFIG)
    put_raw(local_stores, f"pipelines/{SLUG}/raw/a.csv", _rows(3, "old"))
    run_pipeline(local_stores, SLUG)
    old = read_table(local_stores, SLUG, "t").sort("month", "v")
    put_raw(local_stores, f"pipelines/{SLUG}/raw/a.csv", _rows(5, "new"))

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(local_settings.data_dir), SLUG, stop],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "STOPPED"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    seen = read_table(local_stores, SLUG, "t").sort("month", "v")
    if stop == "before":
        assert table_version(local_stores, SLUG, "t") == 0
        assert seen.equals(old)
    else:
        assert table_version(local_stores, SLUG, "t") == 1
        assert seen.height == 15 and set(seen.get_column("v").str.head(3)) == {"new"}

    run_pipeline(local_stores, SLUG)
    converged = read_table(local_stores, SLUG, "t").sort("month", "v")
    run_pipeline(local_stores, SLUG, clean_run=True)
    assert converged.equals(read_table(local_stores, SLUG, "t").sort("month", "v"))
    assert converged.height == 15
