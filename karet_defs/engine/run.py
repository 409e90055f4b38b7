"""Running a whole pipeline (SPEC §4, REFERENCE §3.3): the one entry point Dagster assets and scripts call.

Each analytic table is a Delta table (``engine.delta``) and a run makes at most one commit per table. The
last commit records what the table holds per mapping (the mapping's signature and each raw file's ETag), so
a run evaluates only new or changed raw files, removes the rows of changed and removed ones, and commits
both at once; a mapping whose definition changed is evaluated again over all its files. Files are
evaluated in batches (``engine.inputs``), each batch writing one Parquet file per (raw file, partition)
straight under the table root, so a later change of one raw file touches only its own data files. A batch
that fails is redone file by file, so a bad file is reported by name and the good ones are still written.

The stages, each in its module: ``inputs`` (listing and fetching raw files), ``plan`` (what to evaluate),
``mapping_writer`` with ``evaluation``, ``staging`` and ``checks`` (rows written and checked in one pass),
``table_files`` (rows that leave), ``publishing`` (upload and commit); ``table_run`` drives one table.
"""

import logging
from collections.abc import Collection, Mapping as MappingOf
from pathlib import Path

from karet_defs.catalog import read_pipeline
from karet_defs.engine import delta
from karet_defs.engine.context import RunContext, TableContext
from karet_defs.engine.dimensions import load_dimensions
from karet_defs.engine.inputs import RawInputs, list_inputs
from karet_defs.engine.progress import ProgressTracker
from karet_defs.engine.publishing import TableTarget
from karet_defs.engine.report import RunReport, TableReport
from karet_defs.engine.rollups import RollupContext, run_rollups
from karet_defs.engine.table_run import TableRun
from karet_defs.expr.lookups import build_lookup_registry
from karet_defs.scratch import reap_orphans, scratch_dir
from karet_defs.store.base import Stores

_log = logging.getLogger("karet.engine")


def run_pipeline(
    stores: Stores,
    slug: str,
    *,
    clean_run: bool = False,
    table_ids: Collection[str] | None = None,
    log: logging.Logger | None = None,
    commit_info: MappingOf[str, str] | None = None,
    progress: ProgressTracker | None = None,
) -> RunReport:
    """Run every mapping of a pipeline (or only those feeding ``table_ids``) and commit its tables.

    ``commit_info`` (Dagster run id, trigger, config ETag) is recorded in each commit; ``progress`` is
    updated as the run goes (its caller reports its end).
    """
    log = log or _log
    progress = progress or ProgressTracker()
    pipeline = read_pipeline(stores, slug)
    tables = [t for t in pipeline.analytic_tables if table_ids is None or t.id in table_ids]
    report = RunReport(tables={t.id: TableReport(t.id) for t in tables})
    mappings = [m for m in pipeline.mappings if m.analytic_table_id in report.tables]
    reap_orphans()  # scratch of runs killed on this host: downloaded inputs, staged files
    info = {
        delta.META_OPERATION: "clean_run" if clean_run else "run",
        **(commit_info or {}),
    }
    with scratch_dir("run") as tmp:
        scratch = Path(tmp)
        progress.phase("listing")
        inputs = RawInputs(
            stores.lake, scratch / "inputs", list_inputs(stores.lake, pipeline, slug, mappings)
        )
        if not inputs.infos:
            log.info("no input files found for pipeline %s", slug)
        lookups = build_lookup_registry(pipeline.lookup_mappings)
        dimensions = load_dimensions(stores.lake, pipeline, slug, scratch / "dimensions")
        run = RunContext(stores.warehouse, slug, pipeline, inputs, lookups, dimensions, report, log, progress)
        rollup_tables = {r.analytic_table_id for r in pipeline.rollups}
        for table in tables:
            if table.id in rollup_tables:
                continue  # written by its rollup, below, once its source table is committed
            target = TableTarget.of(stores.warehouse, slug, table, scratch / "tables")
            TableRun(TableContext(run, table, target)).execute(clean_run=clean_run, info=info)
        context = RollupContext(
            stores.warehouse,
            slug,
            pipeline,
            scratch,
            log,
            lookups,
            dimensions.tables,
            dimensions.fingerprints,
        )
        run_rollups(context, report, clean_run=clean_run, info=info)
        report.files_processed = len(inputs.infos) - len(inputs.failed)
        report.files_parsed = inputs.parsed
        for key, reason in inputs.failed.items():
            report.add_error(f"file {key}: download failed: {reason}")
    log.info("%d input file(s), %d parsed in this run", report.files_processed, inputs.parsed)
    return report
