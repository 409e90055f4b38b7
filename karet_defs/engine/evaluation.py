"""A mapping's compiled expressions (its source's record filter, its columns, its ``where``), applied the
same way to one raw file, to a batch of raw files read as one frame, or to an empty frame to learn the
columns the mapping produces."""

from dataclasses import dataclass

import polars as pl

from karet_defs.config.models import LookupMapping, Mapping, SourceContainer
from karet_defs.engine import delta
from karet_defs.engine.inputs import FetchedFile
from karet_defs.engine.read import declared_dtype, read_source_file, scan_csv_files
from karet_defs.expr.compile import CompiledColumns, Dimensions, compile_columns, compile_expr


@dataclass(frozen=True)
class Evaluation:
    """A mapping's compiled expressions, applied the same way to one file or to a batch of files."""

    columns: CompiledColumns
    where: pl.Expr | None
    record_filter: pl.Expr | None

    def apply(self, frame: pl.LazyFrame, *, keep: tuple[str, ...] = ()) -> pl.LazyFrame:
        """The mapping's rows of ``frame`` (raw rows), ``keep`` columns carried along."""
        if self.record_filter is not None:
            frame = frame.filter(self.record_filter)
        frame = self.columns.select(frame, keep=keep)
        return frame.filter(self.where) if self.where is not None else frame


def compile_mapping(
    mapping: Mapping,
    source: SourceContainer,
    lookups: dict[str, LookupMapping],
    dimensions: Dimensions,
) -> Evaluation:
    """Compile ``mapping`` over ``source``; raises ``KaretError`` for an expression that does not compile."""
    columns = compile_columns([(c.name, c.expr) for c in mapping.columns], lookups, dimensions)
    where = compile_expr(mapping.where, lookups, dimensions) if mapping.where is not None else None
    record_filter = (
        compile_expr(source.record_filter, lookups, dimensions) if source.record_filter is not None else None
    )
    return Evaluation(columns, where, record_filter)


def produced_schema(evaluation: Evaluation, source: SourceContainer) -> pl.Schema:
    """The columns the mapping produces from ``source``'s declared columns."""
    empty = pl.LazyFrame(schema={c.name: declared_dtype(c) for c in source.schema_})
    return evaluation.apply(empty).collect_schema()


def evaluate_batch(
    evaluation: Evaluation, batch: list[FetchedFile], source: SourceContainer, mapping_id: str
) -> pl.LazyFrame:
    """The mapping's rows of every file of ``batch``, each with its raw file and the mapping (the hidden
    columns); CSV files sharing one header are read by one scan."""
    header = batch[0].header
    if len(batch) > 1 and header is not None and all(file.header == header for file in batch):
        path_column = "__karet_path"
        key_of = {str(file.path): file.info.key for file in batch}
        scan = scan_csv_files([file.path for file in batch], source.schema_, header, path_column=path_column)
        frame = evaluation.apply(scan, keep=(path_column,))
        raw_file = pl.col(path_column).replace_strict(key_of, return_dtype=pl.String)
        frame = frame.with_columns(raw_file.alias(delta.SOURCE_COLUMN)).drop(path_column)
    else:
        frames = [
            evaluation.apply(read_source_file(file.path, source)).with_columns(
                pl.lit(file.info.key, pl.String).alias(delta.SOURCE_COLUMN)
            )
            for file in batch
        ]
        frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    return frame.with_columns(pl.lit(mapping_id, pl.String).alias(delta.MAPPING_COLUMN))
