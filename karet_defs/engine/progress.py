"""Progress of one run as the engine sees it: the phase, files and bytes done of those planned, rows read and
written, the file at hand, the time spent and an estimate of the time left.

The engine updates a ``ProgressTracker`` at cheap points (a file fetched, a batch written, a phase begun);
the tracker hands a ``Progress`` snapshot to its sink at most once per ``interval`` seconds, so an adapter
(Dagster events of the run, a terminal bar) never sees more than it can show and the engine never waits on
it more than a few times a second. The caller owns the tracker's end: ``finish`` reports the last state.

Totals grow table by table (each table's files are known once it is planned), so the estimate covers the
work planned so far; it is taken from bytes, or from files when the raw files hold no bytes.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

PHASES = ("listing", "parsing", "transforming", "writing", "committing", "checks", "done")
PROGRESS_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class Progress:
    """One snapshot; ``files_*`` count (mapping, raw file) evaluations, ``rows_read`` the rows evaluated
    (after the source's record filter and the mapping's ``where``)."""

    phase: str
    table: str | None
    files_done: int
    files_total: int
    rows_read: int
    rows_written: int
    bytes_done: int
    bytes_total: int
    current_file: str | None
    elapsed_seconds: float
    eta_seconds: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Progress":
        """The snapshot ``to_dict`` gave (a JSON object: its values are as ``to_dict`` wrote them)."""
        fields: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)


ProgressSink = Callable[[Progress], None]


class ProgressTracker:
    """Counters of a run and the throttle in front of its sink (no sink: counting only)."""

    def __init__(
        self,
        sink: ProgressSink | None = None,
        *,
        interval: float = PROGRESS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink, self._interval, self._clock = sink, interval, clock
        self._started = clock()
        self._last_sent = -float("inf")
        self.phase_name = PHASES[0]
        self.table: str | None = None
        self.current_file: str | None = None
        self.files_done = self.files_total = 0
        self.bytes_done = self.bytes_total = 0
        self.rows_read = self.rows_written = 0

    def phase(self, name: str, *, table: str | None = None) -> None:
        self.phase_name = name
        if table is not None:
            self.table = table
        self._tick()

    def plan(self, files: int, size: int) -> None:
        """Add a table's planned work to the totals."""
        self.files_total += files
        self.bytes_total += size

    def file(self, key: str) -> None:
        self.current_file = key
        self._tick()

    def done(self, files: int, size: int) -> None:
        self.files_done += files
        self.bytes_done += size
        self._tick()

    def rows(self, read: int, written: int) -> None:
        """Add rows (negative to take back rows of output that was discarded)."""
        self.rows_read += read
        self.rows_written += written

    def finish(self) -> None:
        """Report the end at once, whatever the throttle says."""
        self.phase_name, self.current_file = "done", None
        self._send()

    def snapshot(self) -> Progress:
        elapsed = self._clock() - self._started
        return Progress(
            phase=self.phase_name,
            table=self.table,
            files_done=self.files_done,
            files_total=self.files_total,
            rows_read=self.rows_read,
            rows_written=self.rows_written,
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            current_file=self.current_file,
            elapsed_seconds=round(elapsed, 3),
            eta_seconds=self._eta(elapsed),
        )

    def _eta(self, elapsed: float) -> float | None:
        if self.phase_name == "done":
            return 0.0
        done, total = self.bytes_done, self.bytes_total
        if not total:
            done, total = self.files_done, self.files_total
        if not done or not total:
            return None
        return round(elapsed * max(total - done, 0) / done, 1)

    def _tick(self) -> None:
        if self._sink is not None and self._clock() - self._last_sent >= self._interval:
            self._send()

    def _send(self) -> None:
        if self._sink is None:
            return
        self._last_sent = self._clock()
        self._sink(self.snapshot())
