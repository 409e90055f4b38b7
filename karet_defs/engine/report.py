"""What a run reports (SPEC §4): per analytic table what it wrote, removed, de-duplicated and held back, and
for the worker the run's totals and errors, each row of a quarantined raw file among them."""

from dataclasses import dataclass, field

from karet_defs.engine.assertions import Violation


@dataclass
class TableReport:
    """What one run did to one analytic table."""

    table_id: str
    partitions: list[str] = field(default_factory=list)
    rows_written: int = 0
    rows_removed: int = 0
    rows_deduped: int = 0
    mappings_written: list[str] = field(default_factory=list)
    mappings_failed: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # raw files held back for failing rows
    columns: dict[str, str] = field(default_factory=dict)
    version: int | None = None  # the Delta version this run committed, None when it committed nothing


@dataclass(frozen=True)
class FileError:
    """One row of a quarantined raw file: where it is, what it holds, what the column expects."""

    file: str
    line: int  # the line of the raw file (the header is line 1)
    column: str
    value: str | None
    message: str

    def to_dict(self) -> dict[str, object]:
        """The row as the worker's answer lists it."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "value": self.value,
            "message": self.message,
        }


@dataclass
class RunReport:
    """The worker's answer: ``partitions_written``, ``files_processed``, ``errors``, plus per-table facts."""

    partitions_written: int = 0
    files_processed: int = 0
    files_parsed: int = 0
    errors: list[str] = field(default_factory=list)
    file_errors: list[FileError] = field(default_factory=list)
    tables: dict[str, TableReport] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """The worker's answer itself."""
        return {
            "partitions_written": self.partitions_written,
            "files_processed": self.files_processed,
            "errors": list(self.errors),
        }

    def add_error(self, message: str) -> None:
        """Record ``message`` once, however many times it is met."""
        if message not in self.errors:
            self.errors.append(message)
