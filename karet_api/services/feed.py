"""One poller of Dagster's event log per API process, fanning Karet's events out to every live client.

SSE streams and WebSockets subscribe with a filter and get each event of the log once, in storage-id order,
from one read per tick for all of them (``POLL_SECONDS``; a tick whose log did not grow costs one
``max(id)`` query). Long-polling consumers wait here for the log to grow past what they have read. The
poller runs only while someone listens and ends when the last one leaves, so a client gone leaves nothing
behind; ``close_feed`` ends it and every stream at shutdown.

A subscriber too slow to keep ``QUEUE_SIZE`` events is dropped (its stream ends) rather than holding memory:
an SSE client resumes from its ``Last-Event-ID``. ``replay`` reads what a resuming client missed straight from
the log, up to where its live subscription starts, so it sees each event exactly once.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from karet_defs.orchestration.feed import FeedEvent, FeedReader

_log = logging.getLogger("karet.api.feed")

POLL_SECONDS = 0.25
QUEUE_SIZE = 1000
_RETRY_SECONDS = 1.0

Accept = Callable[[FeedEvent], bool]


class Subscription:
    """The events a client accepts, from the storage id ``start`` on; iterate it until it ends."""

    def __init__(self, accept: Accept, start: int) -> None:
        self.accept = accept
        self.start = start
        self._queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self.closed = False

    def push(self, event: FeedEvent) -> None:
        if self.closed or not self.accept(event):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            _log.info("a feed subscriber fell %d events behind and was dropped", QUEUE_SIZE)
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        while not self._queue.empty():  # what it has not taken is read again on resume
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[FeedEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[FeedEvent]:
        while (event := await self._queue.get()) is not None:
            yield event


class FeedHub:
    """The shared poller (see the module docstring)."""

    def __init__(self, reader: FeedReader, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.reader = reader
        self.poll_seconds = poll_seconds
        self.cursor = 0  # every event up to this storage id has been handed to the subscribers
        self._subscriptions: set[Subscription] = set()
        self._waiters = 0
        self._grew = asyncio.Condition()
        self._starting = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        return len(self._subscriptions) + self._waiters

    @property
    def running(self) -> bool:
        return self._task is not None

    @asynccontextmanager
    async def subscribe(self, accept: Accept) -> AsyncIterator[Subscription]:
        """A live subscription, removed however the client's stream ends."""
        async with self._starting:
            await self._ensure_running()
            subscription = Subscription(accept, self.cursor)
            self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            subscription.close()

    async def replay(self, after: int, upto: int, accept: Accept) -> AsyncIterator[FeedEvent]:
        """The accepted events with ``after`` < storage id <= ``upto``, read from the log page by page."""
        while after < upto:
            events, read_to = await run_in_threadpool(self.reader.read, after)
            for event in events:
                if event.offset <= upto and accept(event):
                    yield event
            if read_to == after:
                return
            after = read_to

    async def wait_past(self, offset: int, timeout: float) -> None:
        """Return once the log has grown past ``offset`` (as far as the poller saw), or after ``timeout``."""
        self._waiters += 1
        try:
            async with self._starting:
                await self._ensure_running()
            async with self._grew:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._grew.wait_for(lambda: self.cursor > offset), timeout)
        finally:
            self._waiters -= 1

    async def close(self) -> None:
        """End the poller and every subscription (shutdown)."""
        for subscription in list(self._subscriptions):
            subscription.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _ensure_running(self) -> None:
        if self._task is None:
            # Nobody listened while it was stopped: live delivery starts from now.
            self.cursor = await run_in_threadpool(self.reader.latest)
            self._task = asyncio.create_task(self._poll(), name="karet-feed-poller")

    async def _poll(self) -> None:
        try:
            while self.listeners:
                try:
                    await self._tick()
                except Exception:
                    # The log may be briefly unreadable (a locked SQLite file, a Postgres failover): the
                    # clients wait, the cursor stays, and the next tick reads from it again.
                    _log.exception("reading Dagster's event log failed; retrying")
                    await asyncio.sleep(_RETRY_SECONDS)
                    continue
                await asyncio.sleep(self.poll_seconds)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _tick(self) -> None:
        latest = await run_in_threadpool(self.reader.latest)
        while self.cursor < latest:
            events, read_to = await run_in_threadpool(self.reader.read, self.cursor)
            if read_to == self.cursor:
                break
            for event in events:
                for subscription in list(self._subscriptions):
                    subscription.push(event)
            self.cursor = read_to
            async with self._grew:
                self._grew.notify_all()


def feed_hub(app: FastAPI) -> FeedHub:
    """The app's hub, made on first use (inside the app's event loop)."""
    hub: FeedHub | None = getattr(app.state, "karet_feed", None)
    if hub is None:
        hub = app.state.karet_feed = FeedHub(FeedReader(app.state.instance))
    return hub


async def close_feed(app: FastAPI) -> None:
    hub: FeedHub | None = getattr(app.state, "karet_feed", None)
    if hub is not None:
        await hub.close()
