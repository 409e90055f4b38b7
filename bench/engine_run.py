"""Run our engine on a local store the way a Dagster run's asset body does; report as one JSON line.

Like the asset body, this calls ``run_pipeline``, then reads the table's stats for its metadata; Dagster
itself is measured on its own by ``bench.dagster_probe``. A clean run (the default) replaces every row of
each table with a new Delta version; ``--incremental`` (``clean_run=False``, as a sensor's run) evaluates
only the raw files that are new or changed since the table's last commit and removes the rows of changed
and removed ones (there is no cache: the state is in the table's commit metadata). ``engine_s`` is the
time inside the process, without interpreter start-up and imports. The engine's log goes to stderr. Usage:
``python -m bench.engine_run DATA_DIR SLUG [--incremental]``.
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from karet_defs.engine.run import run_pipeline
from karet_defs.engine.stats import table_stats
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("slug")
    parser.add_argument("--incremental", action="store_true", help="clean_run=False, as a sensor's run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    settings = Settings(data_dir=args.data_dir, s3_bucket="")
    stores = build_stores(settings)
    start = time.perf_counter()
    report = run_pipeline(stores, args.slug, clean_run=not args.incremental)
    stats = {t: table_stats(stores.warehouse, args.slug, t) for t in report.tables}
    elapsed = time.perf_counter() - start
    result = {
        "engine_s": elapsed,
        "rows_written": sum(t.rows_written for t in report.tables.values()),
        "table_rows": sum(s.row_count for s in stats.values()),
        "files_processed": report.files_processed,
        "files_parsed": getattr(report, "files_parsed", None),
        "partitions_written": report.partitions_written,
        "errors": report.errors,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.exit(1 if report.errors else 0)
