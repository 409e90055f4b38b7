"""The debounce of automatic runs (S3 events and uploads) in this API process, watched by one asyncio task.

The first new file version for an idle pipeline starts a ``webhook`` run at once; versions arriving while a
run of that pipeline is queued or running (ours or one started elsewhere) set one follow-up flag, and the
follow-up starts as soon as the current run ends. State is one small record per pipeline in flight (the flag
and the bounded ``ChangeCursor`` of the versions each run covers), never a queue, so a burst of 500 uploads
gives two runs. A version already covered (the records of ``karet_defs.orchestration.run_coverage``, shared
with the raw-files sensor, or the pending follow-up) is dropped, so redeliveries start nothing; the claim is
written right after the run is created, so a crash before that leaves the files to the sensor. ``submit``
decides and starts the first run on the caller's worker thread; the supervisor, the one task the app's
lifespan runs (``start``), notices each run's end (a run on a thread here at the next tick, a queued or
foreign one by asking Dagster every ``_RUN_POLL_SECONDS``) and starts the follow-up: no thread per pipeline.
"""

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass, field

import dagster as dg

from karet_defs.errors import KaretError
from karet_defs.orchestration.launch import start_pipeline_run, submit_pipeline_run
from karet_defs.orchestration.run_coverage import (
    SENSOR,
    WEBHOOK,
    active_run,
    claim_for_webhook,
    read_coverage,
    run_is_active,
)
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectInfo, Stores
from karet_defs.store.changes import ChangeCursor

_log = logging.getLogger("karet.api.autoruns")

# A run on a thread of this process ends when the thread does, which costs nothing to look at; any other
# run is known only to Dagster's run storage, which is asked less often.
_TICK_SECONDS = 0.05
_RUN_POLL_SECONDS = 0.25


@dataclass
class _Run:
    """A run being waited for: executing on ``worker`` here (the embedded default), or known by id only."""

    run_id: str
    worker: threading.Thread | None = None
    polled_at: float = -math.inf


@dataclass
class _InFlight:
    """A pipeline with a run in flight: the versions that run covers, whether a follow-up is wanted and the
    versions it will cover, and the run itself (None while it is being started)."""

    covered: ChangeCursor = field(default_factory=ChangeCursor)
    follow_up: bool = False
    pending: ChangeCursor = field(default_factory=ChangeCursor)
    run: _Run | None = None

    def covers(self, version: ObjectInfo) -> bool:
        return self.covered.covers(version) or self.pending.covers(version)


class AutoRuns:
    """The debounce of webhook and upload runs of one app (see the module docstring)."""

    def __init__(self, instance: dg.DagsterInstance, stores: Stores, settings: Settings) -> None:
        self.instance = instance
        self.stores = stores
        self.settings = settings
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight: dict[str, _InFlight] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()

    def submit(self, slug: str, versions: list[ObjectInfo]) -> bool:
        """Schedule the versions' pipeline: start a run now, or flag one follow-up; False if nothing new.

        Called from a worker thread; without a started supervisor (an app whose lifespan has not started)
        it raises rather than start a run whose follow-ups nobody would start.
        """
        if self._loop is None:
            raise RuntimeError("automatic runs need the app's lifespan: its supervisor task is not running")
        covered = [read_coverage(self.instance, trigger, slug) for trigger in (WEBHOOK, SENSOR)]
        with self._lock:
            in_flight = self._in_flight.get(slug)
            fresh = [
                v
                for v in versions
                if not any(c.covers(v) for c in covered)
                and not (in_flight is not None and in_flight.covers(v))
            ]
            if not fresh:
                return False
            claim = ChangeCursor().advance(fresh)
            if in_flight is not None:
                in_flight.follow_up = True
                in_flight.pending = in_flight.pending.merge(claim)
                return True
            in_flight = self._in_flight[slug] = _InFlight(covered=claim)
        run: _Run | None = None
        try:
            foreign = active_run(self.instance, slug, stale_after=self.settings.orphan_after_seconds)
            if foreign is not None:
                with self._lock:
                    in_flight.covered, in_flight.follow_up = ChangeCursor(), True
                    in_flight.pending = in_flight.pending.merge(claim)
                run = _Run(foreign)
            else:
                run = self._launch(slug, claim)
        finally:
            if run is None:  # not started, or an unexpected error on its way up
                self._release(slug, in_flight)
        if run is None:
            return False
        self._watch(slug, in_flight, run)
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Block until no pipeline has a run in flight here (tests, benchmarks); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_flight, timeout=timeout)

    def start(self) -> "asyncio.Task[None]":
        """Start the supervisor on the running loop (the app's lifespan); cancel the task to stop it."""
        # Attached before the task first runs, so a request served right after startup finds it.
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        return asyncio.create_task(self._supervise(), name="karet-autoruns")

    async def _supervise(self) -> None:
        """Watch every run in flight and start each follow-up when its run ends; runs until cancelled."""
        try:
            while True:
                self._wake.clear()  # before the pass: a run handed over during it wakes the next wait
                if await self._pass():
                    await asyncio.sleep(_TICK_SECONDS)
                else:
                    await self._wake.wait()
        finally:
            self._loop = None
            with self._lock:
                # Runs still in flight go on without us; their follow-ups were never claimed, so the sensor
                # runs those files.
                self._in_flight.clear()
                self._idle.notify_all()

    async def _pass(self) -> bool:
        """One look at every run in flight; whether any is still being waited for."""
        with self._lock:
            watched = [(slug, f) for slug, f in self._in_flight.items() if f.run is not None]
        for slug, in_flight in watched:
            try:
                if await self._ended(in_flight):
                    await self._follow_up(slug, in_flight)
            except Exception:
                # Whatever went wrong, the pipeline must not stay busy forever, nor the others wait on it.
                _log.exception("automatic runs of %s stopped", slug)
                self._release(slug, in_flight)
        return bool(watched)

    async def _ended(self, in_flight: _InFlight) -> bool:
        run = in_flight.run
        if run is None:
            return False
        if run.worker is not None:
            return not run.worker.is_alive()
        now = time.monotonic()
        if now - run.polled_at < _RUN_POLL_SECONDS:
            return False
        run.polled_at = now
        stale_after = self.settings.orphan_after_seconds
        return not await asyncio.to_thread(run_is_active, self.instance, run.run_id, stale_after=stale_after)

    async def _follow_up(self, slug: str, in_flight: _InFlight) -> None:
        with self._lock:
            if not in_flight.follow_up:
                # Still under the lock: an event racing the run's end finds the pipeline idle and starts a
                # run, rather than flagging a follow-up nobody will start.
                self._release_locked(slug, in_flight)
                return
            in_flight.covered, in_flight.pending = in_flight.pending, ChangeCursor()
            in_flight.follow_up, in_flight.run = False, None
            claim = in_flight.covered
        run = await asyncio.to_thread(self._launch, slug, claim)
        if run is None:
            self._release(slug, in_flight)
        else:
            with self._lock:
                in_flight.run = run

    def _launch(self, slug: str, claim: ChangeCursor) -> _Run | None:
        # In this process on the embedded default, else through Dagster's queue (as the jobs route does);
        # None when it could not start.
        try:
            if self.settings.queues_runs:
                run = _Run(submit_pipeline_run(self.settings.dagster_url, slug, trigger="webhook"))
            else:
                prepared, worker = start_pipeline_run(self.instance, slug, trigger="webhook")
                run = _Run(prepared.run_id, worker)
        except (KaretError, dg.DagsterError) as exc:
            # Not loadable as a job here (e.g. its config broke since the index was built): the files stay
            # unclaimed, so the sensor still runs them once the pipeline is fixed.
            _log.warning("webhook run of %s not started: %s", slug, exc)
            return None
        claim_for_webhook(self.instance, slug, claim)
        _log.info("webhook run %s of %s started", run.run_id, slug)
        return run

    def _watch(self, slug: str, in_flight: _InFlight, run: _Run) -> None:
        # Hand the run to the supervisor: its loop runs on another thread, so it is woken thread-safely.
        with self._lock:
            in_flight.run = run
        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("the supervisor stopped")
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:
            # The app is shutting down: nobody will start the follow-up, whose files the sensor still runs.
            self._release(slug, in_flight)

    def _release(self, slug: str, in_flight: _InFlight) -> None:
        with self._lock:
            self._release_locked(slug, in_flight)

    def _release_locked(self, slug: str, in_flight: _InFlight) -> None:
        if self._in_flight.get(slug) is in_flight:  # never the record of a newer run of the same pipeline
            del self._in_flight[slug]
            self._idle.notify_all()
