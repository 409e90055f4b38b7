"""How many queries one process runs at once: a slot per query, waited for briefly, else refused.

Each query gets a DuckDB of its own with ``DUCKDB_MEMORY_LIMIT`` and two threads, so the number running
together bounds the process's memory and how far they share its cores. A request that finds every slot
taken waits up to ``wait_seconds`` (long enough for a dashboard's panels to free one) and is then refused
with ``rate_limited`` and a ``Retry-After``, rather than queueing behind an unbounded backlog.
"""

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from karet_defs.errors import QueryConcurrencyExceeded


class QueryGate:
    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._free = threading.BoundedSemaphore(slots)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the block; ``rate_limited`` when none frees within the wait."""
        if not self._free.acquire(timeout=self.wait_seconds):
            raise QueryConcurrencyExceeded(
                f"all {self.slots} query slots are busy; try again shortly",
                retry_after=max(1, math.ceil(self.wait_seconds)),
            )
        try:
            yield
        finally:
            self._free.release()
