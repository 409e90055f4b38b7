"""A run killed with SIGKILL in the middle of publishing leaves every partition readable, old or new."""

import os
import signal
import subprocess
import sys
import textwrap

import polars as pl

from karet_defs.engine.run import run_pipeline
from karet_defs.store import keys
from tests.factories import col, make_pipeline, put_config, put_raw, read_table, table_files

SLUG = "crash"
CONFIG = make_pipeline(
    source_columns=[("month", "int64"), ("v", "string")],
    columns=[("month", col("month")), ("v", col("v"))],
    table_schema=[{"name": "month", "type": "int64"}, {"name": "v", "type": "string"}],
    partition_keys=["month"],
)
# The child stops inside the second object write: after the temp file is written, before its rename.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from karet_defs.settings import Settings
    from karet_defs.store.factory import build_stores
    from karet_defs.engine.run import run_pipeline

    real_fsync, writes = os.fsync, []
    def fsync(fd):
        real_fsync(fd)
        writes.append(fd)
        if len(writes) == 2:
            print("MID-WRITE", flush=True)
            time.sleep(60)
    os.fsync = fsync
    run_pipeline(build_stores(Settings(data_dir=sys.argv[1], s3_bucket="")), sys.argv[2])
    """
)


def _rows(n: int, tag: str) -> str:
    return "month,v\n" + "".join(f"{m},{tag}{i}\n" for m in (1, 2, 3) for i in range(n))


def test_sigkill_mid_publish_leaves_old_or_new_files_and_rerun_converges(
    local_settings, local_stores, tmp_path
):
    put_config(local_stores, SLUG, CONFIG)
    put_raw(local_stores, f"pipelines/{SLUG}/raw/a.csv", _rows(3, "old"))
    run_pipeline(local_stores, SLUG)
    old = table_files(local_stores, SLUG, "t")
    put_raw(local_stores, f"pipelines/{SLUG}/raw/a.csv", _rows(5, "new"))

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(local_settings.data_dir), SLUG],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "MID-WRITE"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    after = table_files(local_stores, SLUG, "t")
    assert sorted(after) == sorted(old)
    changed = [relative for relative in after if after[relative] != old[relative]]
    assert len(changed) == 1, "the first partition was replaced, the others not yet"
    for relative in after:
        frame = pl.read_parquet(local_stores.warehouse.local_path(keys.table_prefix(SLUG, "t") + relative))
        assert frame.height == (5 if relative in changed else 3)

    run_pipeline(local_stores, SLUG)
    converged = read_table(local_stores, SLUG, "t", tmp_path / "a").sort("month", "v")
    run_pipeline(local_stores, SLUG, clean_run=True)
    assert converged.equals(read_table(local_stores, SLUG, "t", tmp_path / "b").sort("month", "v"))
    assert converged.height == 15
