"""One analytic table's run: plan each mapping against the state the table's last commit recorded, write
and check its rows, drop the rows that leave, and publish all of it as one commit."""

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from karet_defs.config.models import Mapping
from karet_defs.engine import delta
from karet_defs.engine.assertions import Violation
from karet_defs.engine.checks import MappingFailed
from karet_defs.engine.context import TableContext
from karet_defs.engine.evaluation import Evaluation, compile_mapping, produced_schema
from karet_defs.engine.mapping_writer import MappingWriter
from karet_defs.engine.migrate_tables import convert_legacy_table
from karet_defs.engine.plan import MappingPlan, plan_mapping
from karet_defs.engine.publishing import publish
from karet_defs.engine.table_files import kept_rows, remove_rows
from karet_defs.errors import KaretError


class TableRun:
    """One table's run: plan per mapping, evaluate, check, write data files, commit once."""

    def __init__(self, ctx: TableContext) -> None:
        self.ctx, self.run, self.table, self.target = ctx, ctx.run, ctx.table, ctx.target

    def execute(self, *, clean_run: bool, info: dict[str, str]) -> None:
        """Bring the table up to date with the run's raw files (all of them again when ``clean_run``)."""
        target, progress = self.target, self.run.progress
        current = self._open()
        state = (
            None
            if current is None or clean_run
            else delta.recorded_state(target.location, current.version(), target.warehouse, target.prefix)
        )
        active = delta.active_files(current) if current is not None else pl.DataFrame()
        replace_all = current is None or state is None
        plans = [
            plan
            for m in self.run.pipeline.mappings_of_table(self.table.id)
            if (plan := plan_mapping(self.run, self.table, m, state))
        ]
        expected = self._expected_schema(plans)
        schema_changed = current is not None and not delta.same_schema(current, expected)
        if schema_changed:
            replace_all = True
        if replace_all:
            for plan in plans:
                plan.replace_all()
        progress.plan(sum(len(p.to_process) for p in plans), sum(i.size for p in plans for i in p.to_process))
        progress.phase("parsing", table=self.table.id)
        change = delta.Commit(replace_all=replace_all, schema_changed=schema_changed)
        new_state: dict[str, delta.MappingState] = {}
        leaving: dict[str, set[str] | None] = {}  # mapping → raw files whose rows leave (None: all)
        for plan in plans:
            outcome = self._run_mapping(plan, active)
            if outcome is None:  # failed: its rows and state stay as they were (gone when replacing all)
                if plan.previous is not None and not replace_all:
                    new_state[plan.mapping.id] = plan.previous
                continue
            added, files = outcome
            change.added += added
            new_state[plan.mapping.id] = delta.MappingState(plan.signature, files)
            if plan.full or plan.gone:
                leaving[plan.mapping.id] = None if plan.full else plan.gone
        if not replace_all:
            # Rows of mappings no longer feeding this table leave it too.
            for mapping_id in set(state or {}) - {plan.mapping.id for plan in plans}:
                leaving[mapping_id] = None
            progress.phase("writing")
            change.removed, rewritten = remove_rows(target, active, leaving)
            change.added += rewritten
        state_changed = state is None or new_state != state
        if change.empty and not state_changed:
            self.run.log.info("table %s: nothing new, no commit", self.table.id)
            return
        if replace_all and not change.added and current is None:
            return  # nothing to create a table from
        metadata = {**info, delta.META_STATE: delta.encode_state(new_state)}
        version = publish(target, current, change, expected, metadata, self.run.report, progress)
        self.run.log.info(
            "table %s: version %d, %d row(s) in %d file(s) added, %d row(s) in %d file(s) removed",
            self.table.id,
            version,
            change.rows_added,
            len(change.added),
            change.rows_removed,
            len(change.removed),
        )

    def _open(self) -> DeltaTable | None:
        current = delta.open_table(self.target.location)
        if current is None and self._has_legacy_files():
            convert_legacy_table(self.run.warehouse, self.run.slug, self.table)
            current = delta.open_table(self.target.location)
        return current

    def _has_legacy_files(self) -> bool:
        return any(info.key.endswith(".parquet") for info in self.target.warehouse.list(self.target.prefix))

    def _expected_schema(self, plans: list[MappingPlan]) -> pa.Schema:
        """The table's schema after this run: the mappings' columns, partition keys, hidden columns."""
        columns: dict[str, pl.DataType] = {}
        for plan in plans:
            try:
                produced = produced_schema(self._compile(plan), plan.source)
            except (KaretError, pl.exceptions.PolarsError):
                continue  # reported when the mapping runs
            for name, dtype in produced.items():
                columns.setdefault(name, dtype)
        for key in self.target.partition_keys:
            columns[key] = columns.pop(key, pl.String())
        columns[delta.SOURCE_COLUMN] = pl.String()
        columns[delta.MAPPING_COLUMN] = pl.String()
        return pl.DataFrame(schema=columns).to_arrow().schema

    def _compile(self, plan: MappingPlan) -> Evaluation:
        return compile_mapping(plan.mapping, plan.source, self.run.lookups, self.run.dimensions.tables)

    def _run_mapping(
        self, plan: MappingPlan, active: pl.DataFrame
    ) -> tuple[list[delta.DataFile], dict[str, str]] | None:
        """Evaluate the plan's files into data files; return (added, raw files now held with their ETags),
        or None when the mapping failed (reported) and must change nothing."""
        mapping = plan.mapping
        try:
            evaluation = self._compile(plan)
        except KaretError as exc:
            self._fail(mapping, f"ingest {mapping.id}: evaluator error: {exc.message}")
            return None
        kept = plan.kept
        existing = kept_rows(self.target, active, mapping.id, set(kept)) if kept else None
        writer = MappingWriter(self.ctx, plan, evaluation, existing)
        try:
            succeeded = writer.write(plan.to_process)
            if plan.to_process and not succeeded and not kept:
                # Every file was held back by name: Karet's error stands, and the table drops the rows
                # those files held before, as it would for any one bad file among good ones.
                self.run.report.add_error(f"ingest {mapping.id}: no files succeeded during ingestion")
            self.run.progress.phase("checks")
            writer.verdict()
        except MappingFailed as exc:
            writer.discard()
            self._fail(mapping, str(exc), exc.violations)
            return None
        table_report = self.ctx.report
        table_report.mappings_written.append(mapping.id)
        table_report.rows_deduped += writer.deduped
        table_report.columns.update(writer.columns)
        return writer.added, {**kept, **{info.key: info.etag for info in succeeded}}

    def _fail(self, mapping: Mapping, message: str, violations: list[Violation] | None = None) -> None:
        table_report = self.ctx.report
        self.run.report.add_error(message)
        table_report.mappings_failed.append(mapping.id)
        table_report.violations.extend(violations or [])
