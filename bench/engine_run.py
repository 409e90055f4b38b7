"""Run our engine (the code path a Dagster run uses) on a local store; print rows written."""

import sys
from pathlib import Path

from karet_defs.engine.run import run_pipeline
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores

if __name__ == "__main__":
    stores = build_stores(Settings(data_dir=Path(sys.argv[1]), s3_bucket=""))
    report = run_pipeline(stores, sys.argv[2], clean_run=True)
    assert not report.errors, report.errors
    sys.stdout.write(f"{sum(t.rows_written for t in report.tables.values())}\n")
