"""What the stages of one run share: the run's context (warehouse, pipeline, inputs, expression registries,
report, log, progress) and, within it, one table's (its definition, where it is published, its report)."""

import logging
from dataclasses import dataclass

from karet_defs.config.models import AnalyticTable, LookupMapping, Pipeline
from karet_defs.engine.dimensions import LoadedDimensions
from karet_defs.engine.inputs import RawInputs
from karet_defs.engine.progress import ProgressTracker
from karet_defs.engine.publishing import TableTarget
from karet_defs.engine.report import RunReport, TableReport
from karet_defs.store.base import ObjectStore


@dataclass(frozen=True)
class RunContext:
    """What every table of one run shares."""

    warehouse: ObjectStore
    slug: str
    pipeline: Pipeline
    inputs: RawInputs
    lookups: dict[str, LookupMapping]
    dimensions: LoadedDimensions
    report: RunReport
    log: logging.Logger
    progress: ProgressTracker


@dataclass(frozen=True)
class TableContext:
    """One analytic table within a run: its definition, where it is published and what is reported of it."""

    run: RunContext
    table: AnalyticTable
    target: TableTarget

    @property
    def report(self) -> TableReport:
        """The table's share of the run's report."""
        return self.run.report.tables[self.table.id]
