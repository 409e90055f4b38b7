"""Writing one mapping's rows into its table's staging root, batch by batch.

Each batch is one query: evaluate, (de-duplicate,) stage one data file per (raw file, partition) and count
the row checks, all in one pass over the raw files. A batch that fails is redone file by file, so a bad file
is reported by name and the good ones are still written; a raw file whose rows fail a row check is held
back (quarantined) alone. With ``dedup_keys`` every file is evaluated in one query, in listing order, so the
first row of a key wins across files.
"""

from pathlib import Path

import polars as pl

from karet_defs.engine import delta
from karet_defs.engine.checks import (
    ROWS,
    ROWS_FAILING,
    MappingFailed,
    RowChecks,
    check_unique_across,
    has_unique,
    quarantine_message,
    quarantine_rows,
)
from karet_defs.engine.context import TableContext
from karet_defs.engine.evaluation import Evaluation, evaluate_batch
from karet_defs.engine.inputs import FetchedFile, batches
from karet_defs.engine.plan import MappingPlan
from karet_defs.engine.read import FileReadError, csv_header, describe_read_error, read_source_file
from karet_defs.engine.staging import PartitionedSink, discard_files
from karet_defs.engine.write import PartitionError, check_partition_keys
from karet_defs.store.base import ObjectInfo


class MappingWriter:
    """Writes one mapping's rows, batch by batch, as data files under the table's staging root.

    ``kept`` are the rows the table keeps of this mapping: with ``dedup_keys`` a new row whose key they
    already hold is dropped (the plan guarantees they come from files sorting earlier), and ``unique``
    assertions are checked over them and the new rows together.
    """

    def __init__(
        self, ctx: TableContext, plan: MappingPlan, evaluation: Evaluation, kept: pl.LazyFrame | None
    ) -> None:
        self.ctx, self.plan, self.evaluation, self.kept = ctx, plan, evaluation, kept
        self.table, self.mapping, self.source = ctx.table, plan.mapping, plan.source
        self.staging_root = ctx.target.staging_root
        self.added: list[delta.DataFile] = []
        self.columns: dict[str, str] = {}
        self.deduped = 0
        self._counts: dict[str, int] = {}
        self._checks: RowChecks | None = None
        self._batches = 0
        self.quarantined: set[str] = set()  # raw files held back for rows that fail a row check
        self._rows_told = (0, 0)  # (read, written) rows told to the progress tracker, taken back on discard

    def write(self, files: list[ObjectInfo]) -> list[ObjectInfo]:
        """Evaluate and write ``files``; return those that succeeded (failures are reported by name)."""
        progress = self.ctx.run.progress
        fetched = self._fetch(files)
        if not fetched:
            return []
        progress.phase("transforming")
        if self.table.dedup_keys:
            written = self._write_deduplicated(fetched)
            progress.done(len(fetched), sum(file.info.size for file in fetched))
            return written
        succeeded: list[ObjectInfo] = []
        for batch in batches(fetched):
            progress.file(batch[0].info.key)
            if len(batch) > 1 and self._write_batch(batch) is None:
                succeeded += [file.info for file in batch if file.info.key not in self.quarantined]
            else:
                for file in batch:  # alone, so that a bad file is isolated and named
                    error = self._write_batch([file])
                    if error is None:
                        succeeded += [file.info] if file.info.key not in self.quarantined else []
                    else:
                        reason = describe_read_error(error, file.path, self.source)
                        self.ctx.run.report.add_error(f"file {file.info.key}: {reason}")
            progress.done(len(batch), sum(file.info.size for file in batch))
        return succeeded

    def _fetch(self, files: list[ObjectInfo]) -> list[FetchedFile]:
        """``files`` fetched, with their CSV header read; one that cannot be is reported and left out."""
        run = self.ctx.run
        fetched: list[FetchedFile] = []
        for info in files:
            run.progress.file(info.key)
            path = run.inputs.path(info.key)
            if path is None:
                run.progress.done(1, info.size)
                continue
            run.inputs.parsed += 1
            header = None
            if self.source.format == "csv":
                try:
                    header = csv_header(path, self.source.schema_)
                except FileReadError as exc:
                    run.report.add_error(f"file {info.key}: {exc}")
                    run.progress.done(1, info.size)
                    continue
            fetched.append(FetchedFile(info, path, header))
        return fetched

    def _write_deduplicated(self, fetched: list[FetchedFile]) -> list[ObjectInfo]:
        """One query over every file in listing order, so the first row of a key wins across files; a file
        that fails to parse or is quarantined is left out and the query runs again without it (its rows
        must not win a key)."""
        error = self._write_batch(fetched)
        if error is None and not self.quarantined:
            return [file.info for file in fetched]
        self.discard()
        self._counts, self._checks, self._batches, self.deduped = {}, None, 0, 0
        good = [file for file in fetched if file.info.key not in self.quarantined]
        if error is not None:
            good = [file for file in good if self._probe(file)]
        if not good:
            return []
        held_back = set(self.quarantined)
        if self._write_batch(good) is not None or self.quarantined != held_back:
            self.discard()  # not deterministic: nothing of the mapping is trusted
            return []
        return [file.info for file in good]

    def _write_batch(self, batch: list[FetchedFile]) -> pl.exceptions.PolarsError | None:
        """One query: evaluate, (de-duplicate,) write one file per (raw file, partition) and count the row
        checks. On a Polars error nothing is left behind and the error is returned."""
        sink = PartitionedSink(self.staging_root, self.ctx.target.partition_keys, self.mapping.id)
        try:
            frame = evaluate_batch(self.evaluation, batch, self.source, self.mapping.id)
            schema = frame.collect_schema()
            check_partition_keys(schema, {}, self.table)
            rows = self._deduplicated(frame) if self.table.dedup_keys else frame
            checks = RowChecks(schema, self.mapping, self.table)
            queries = [sink.query(rows), checks.query(frame), checks.failing_files(frame)]
            results = pl.collect_all(queries, engine="streaming")
            written = sink.describe()
        except PartitionError as exc:
            sink.discard()
            raise MappingFailed(f"partition {self.mapping.id}: {exc}") from exc
        except pl.exceptions.PolarsError as exc:
            sink.discard()
            return exc
        totals = results[1].row(0, named=True)
        failing = results[2]
        if failing.height:
            # Their rows leave this batch: their data files go, their counts with them.
            held = set(failing.get_column(delta.SOURCE_COLUMN).to_list())
            discard_files(self.staging_root, [f.relative for f in written if f.source in held])
            written = [f for f in written if f.source not in held]
            for name in totals:
                if name in failing.columns:
                    totals[name] = int(totals[name] or 0) - int(failing.get_column(name).sum() or 0)
            for row in failing.iter_rows(named=True):
                self._quarantine(batch, str(row[delta.SOURCE_COLUMN]), int(row[ROWS_FAILING] or 0), checks)
        for name, value in totals.items():
            self._counts[name] = self._counts.get(name, 0) + int(value or 0)
        self._checks = checks
        self._batches += 1
        rows_read, rows_written = int(totals[ROWS]), sum(f.rows for f in written)
        self.deduped += rows_read - rows_written
        self.added += written
        self.ctx.run.progress.rows(rows_read, rows_written)
        self._rows_told = (self._rows_told[0] + rows_read, self._rows_told[1] + rows_written)
        self.columns.update({n: str(t) for n, t in schema.items() if n not in delta.HIDDEN_COLUMNS})
        return None

    def _deduplicated(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        dedup_keys = self.table.dedup_keys
        missing = [k for k in dedup_keys if k not in frame.collect_schema()]
        if missing:
            raise PartitionError(f"dedup key `{missing[0]}` is not produced by the mapping")
        rows = frame.unique(subset=dedup_keys, keep="first", maintain_order=True)
        if self.kept is not None:
            held = self.kept.select(dedup_keys).unique()
            rows = rows.join(held, on=dedup_keys, how="anti", nulls_equal=True, maintain_order="left")
        return rows

    def _probe(self, file: FetchedFile) -> bool:
        """Whether one file evaluates; if not, it is reported by name (with its line where known)."""
        report = self.ctx.run.report
        try:
            # Every column counted, so that every value is parsed and evaluated.
            frame = self.evaluation.apply(read_source_file(file.path, self.source))
            frame.select(pl.all().null_count()).collect(engine="streaming")
        except FileReadError as exc:
            report.add_error(f"file {file.info.key}: {exc}")
            return False
        except pl.exceptions.PolarsError as exc:
            report.add_error(f"file {file.info.key}: {describe_read_error(exc, file.path, self.source)}")
            return False
        return True

    def _quarantine(self, batch: list[FetchedFile], key: str, failing: int, checks: RowChecks) -> None:
        """Hold one raw file back and report it: the file, then each example row's line, column, value
        (as written in the raw file) and what the column expects."""
        self.quarantined.add(key)
        path: Path = next(file.path for file in batch if file.info.key == key)
        examples = quarantine_rows(key, path, self.source, self.evaluation, checks)
        self.ctx.run.report.file_errors.extend(examples)
        self.ctx.run.report.add_error(quarantine_message(key, examples, failing))
        self.ctx.report.quarantined.append(key)

    def verdict(self) -> None:
        """Raise ``MappingFailed`` if the rows the mapping will hold break an assertion."""
        if self._checks is None:
            return
        across = has_unique(self.table) and (
            self.kept is not None or self._batches > 1 or bool(self.quarantined)
        )
        self._checks.verdict(self._counts, unique=not across)
        if across:
            written = pl.scan_parquet([self.staging_root / f.relative for f in self.added])
            check_unique_across(self.kept, written, self.mapping, self.table)

    def discard(self) -> None:
        """Delete every data file written so far and take back the rows told to the progress tracker."""
        discard_files(self.staging_root, [f.relative for f in self.added])
        self.added = []
        self.ctx.run.progress.rows(-self._rows_told[0], -self._rows_told[1])
        self._rows_told = (0, 0)
