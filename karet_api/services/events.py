"""The S3 event webhook: secret check, event records → pipelines, and the debounce of automatic runs.

Debounce (better than Karet's 5 s trailing timer): the first new file version for an idle pipeline starts a
``webhook`` run at once; versions arriving while a run of that pipeline is queued or running (ours or one
started elsewhere) set one follow-up flag, and the follow-up starts the moment the current run ends. State is
one small record per busy pipeline (a flag and the bounded ``ChangeCursor`` of the versions it will cover),
never a queue, so a burst of 500 uploads gives two runs.

A version already covered by a run (the coverage records of ``karet_defs.orchestration.sensors``, shared
with the raw-files sensor, or the pending follow-up) is dropped, so redelivered events and events for files
the sensor already ran start nothing. The claim for a run is written right after the run is created, so a
crash before that leaves the files to the sensor rather than losing them.
"""

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

import dagster as dg
from fastapi import FastAPI, Request

from karet_api.bearer import bearer_token
from karet_api.schemas.events import EventsReceived
from karet_defs.catalog import list_slugs, read_pipeline
from karet_defs.errors import InvalidJson, KaretError, Unauthorized
from karet_defs.orchestration.launch import start_pipeline_run, submit_pipeline_run
from karet_defs.orchestration.sensors import (
    SENSOR,
    WEBHOOK,
    active_run,
    claim_for_webhook,
    raw_files_watch,
    read_coverage,
    run_is_active,
)
from karet_defs.settings import Settings
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, Stores
from karet_defs.store.changes import ChangeCursor, Watch

_log = logging.getLogger("karet.api.events")

WEBHOOK_BODY_LIMIT = 1024 * 1024
CREATED_EVENT_PREFIXES = ("s3:ObjectCreated:", "ObjectCreated:")  # MinIO/RustFS, then AWS's own spelling
INDEX_TTL_SECONDS = 10.0
_INDEX_MISS_REFRESH_SECONDS = 1.0
_FOREIGN_RUN_POLL_SECONDS = 0.25
UNAUTHORIZED_MESSAGE = "missing or invalid webhook secret"


def check_webhook_secret(request: Request, settings: Settings) -> None:
    """Fail closed: without ``KARET_WEBHOOK_SECRET`` every request is refused."""
    expected = settings.webhook_secret.encode()
    presented = [
        bearer_token(request),
        request.headers.get("x-webhook-secret", ""),
        request.query_params.get("secret", ""),
    ]
    # Every candidate is compared, each in constant time, so timing says nothing about which one matched.
    matches = [hmac.compare_digest(candidate.encode(), expected) for candidate in presented if candidate]
    if not expected or not any(matches):
        raise Unauthorized(UNAUTHORIZED_MESSAGE)


def parse_records(body: bytes) -> list[Any]:
    """The ``Records`` of an S3 event envelope; a JSON document without them has none."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: a small but absurdly nested body must be refused, not crash the handler.
        raise InvalidJson(f"request body is not valid JSON: {exc}") from exc
    records = document.get("Records") if isinstance(document, dict) else None
    return records if isinstance(records, list) else []


def created_key(record: Any, lake_bucket: str | None) -> str | None:
    """The decoded object key of an ``ObjectCreated`` record in the lake bucket, else None."""
    if not isinstance(record, dict):
        return None
    name = record.get("eventName")
    if not isinstance(name, str) or not name.startswith(CREATED_EVENT_PREFIXES):
        return None
    s3 = record.get("s3")
    s3 = s3 if isinstance(s3, dict) else {}
    bucket = s3.get("bucket") if isinstance(s3.get("bucket"), dict) else {}
    obj = s3.get("object") if isinstance(s3.get("object"), dict) else {}
    key = obj.get("key")
    if not isinstance(key, str) or not key:
        return None
    if lake_bucket is not None and bucket.get("name") != lake_bucket:
        return None  # warehouse or foreign writes must not loop back into runs
    return unquote_plus(key)


def lake_bucket_of(settings: Settings) -> str | None:
    """The bucket events must name; None on the local store, where events are matched by key alone."""
    return (settings.s3_bucket_lake or settings.s3_bucket) if settings.uses_s3 else None


class PipelineIndex:
    """Slug → ``Watch`` of every runnable pipeline, rebuilt at most every ``INDEX_TTL_SECONDS``.

    A key under ``pipelines/<slug>/`` of a slug the index does not know forces an early rebuild (at most
    once a second), so a pipeline created a moment ago is matched without waiting for the TTL.
    """

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._lock = threading.Lock()
        self._watches: dict[str, Watch] = {}
        self._built_at = -float("inf")

    def match(self, key: str) -> list[str]:
        """Every pipeline whose sources read the object at ``key``."""
        watches = self._current(max_age=INDEX_TTL_SECONDS)
        folder = _pipeline_folder(key)
        if folder is not None and folder not in watches:
            watches = self._current(max_age=_INDEX_MISS_REFRESH_SECONDS)
        return [slug for slug, watch in watches.items() if watch.matches(key)]

    def _current(self, *, max_age: float) -> dict[str, Watch]:
        with self._lock:
            if time.monotonic() - self._built_at > max_age:
                self._watches = self._build()
                self._built_at = time.monotonic()
            return self._watches

    def _build(self) -> dict[str, Watch]:
        watches: dict[str, Watch] = {}
        for slug in list_slugs(self._stores):
            try:
                pipeline = read_pipeline(self._stores, slug)
            except KaretError as exc:
                # It cannot run anyway; its sensor and its Dagster marker asset say why.
                _log.info("events for %s ignored: %s", slug, exc.message)
                continue
            if pipeline.analytic_tables and pipeline.source_containers:
                watches[slug] = raw_files_watch(pipeline, slug)
        return watches


def _pipeline_folder(key: str) -> str | None:
    if not key.startswith(keys.PIPELINES_PREFIX):
        return None
    slug, sep, _ = key[len(keys.PIPELINES_PREFIX) :].partition("/")
    return slug if sep and slug else None


@dataclass
class _Busy:
    """A pipeline with a run in flight: what that run covers, whether a follow-up is wanted, and what for."""

    current: ChangeCursor = field(default_factory=ChangeCursor)
    follow_up: bool = False
    pending: ChangeCursor = field(default_factory=ChangeCursor)

    def covers(self, version: ObjectInfo) -> bool:
        return self.current.covers(version) or self.pending.covers(version)


class AutoRuns:
    """The debounce of webhook and upload runs in this API process (see the module docstring)."""

    def __init__(self, instance: dg.DagsterInstance, stores: Stores, settings: Settings) -> None:
        self.instance = instance
        self.stores = stores
        self.settings = settings
        self.index = PipelineIndex(stores)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy: dict[str, _Busy] = {}

    def submit(self, slug: str, versions: list[ObjectInfo]) -> bool:
        """Schedule the versions' pipeline: start a run now, or flag one follow-up; False if nothing new."""
        covered = [read_coverage(self.instance, trigger, slug) for trigger in (WEBHOOK, SENSOR)]
        with self._lock:
            busy = self._busy.get(slug)
            fresh = [
                v
                for v in versions
                if not any(c.covers(v) for c in covered) and not (busy is not None and busy.covers(v))
            ]
            if not fresh:
                return False
            claim = ChangeCursor().advance(fresh)
            if busy is not None:
                busy.follow_up = True
                busy.pending = busy.pending.merge(claim)
                return True
            busy = self._busy[slug] = _Busy(current=claim)
        foreign = active_run(self.instance, slug, stale_after=self.settings.orphan_after_seconds)
        if foreign is not None:
            with self._lock:
                busy.current, busy.follow_up, busy.pending = ChangeCursor(), True, busy.pending.merge(claim)
            self._supervise(slug, busy, partial(self._wait_for_run, foreign))
            return True
        wait: Callable[[], None] | None = None
        try:
            wait = self._launch(slug, claim)
        finally:
            if wait is None:  # not started, or an unexpected error on its way up
                self._release(slug, busy)
        if wait is None:
            return False
        self._supervise(slug, busy, wait)
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Block until no pipeline has a run in flight here (tests, shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout=timeout)

    def _launch(self, slug: str, claim: ChangeCursor) -> Callable[[], None] | None:
        # In this process on the embedded default, else through Dagster's queue (as the jobs route does);
        # returns how to wait for the run's end, or None when it could not start.
        wait: Callable[[], None]
        try:
            if self.settings.queues_runs:
                run_id = submit_pipeline_run(self.settings.dagster_url, slug, trigger="webhook")
                wait = partial(self._wait_for_run, run_id)
            else:
                prepared, worker = start_pipeline_run(self.instance, slug, trigger="webhook")
                run_id, wait = prepared.run_id, worker.join
        except (KaretError, dg.DagsterError) as exc:
            # Not loadable as a job here (e.g. its config broke since the index was built): the files stay
            # unclaimed, so the sensor still runs them once the pipeline is fixed.
            _log.warning("webhook run of %s not started: %s", slug, exc)
            return None
        claim_for_webhook(self.instance, slug, claim)
        _log.info("webhook run %s of %s started", run_id, slug)
        return wait

    def _supervise(self, slug: str, busy: _Busy, wait: Callable[[], None]) -> None:
        def loop() -> None:
            current: Callable[[], None] | None = wait
            try:
                while current is not None:
                    current()
                    with self._lock:
                        if not busy.follow_up:
                            # Still under the lock: an event racing the run's end finds the pipeline idle
                            # and starts a run, rather than flagging a follow-up nobody will start.
                            self._release_locked(slug, busy)
                            return
                        busy.current, busy.follow_up, busy.pending = busy.pending, False, ChangeCursor()
                        claim = busy.current
                    current = self._launch(slug, claim)
            finally:
                self._release(slug, busy)  # whatever happened, the pipeline must not stay busy forever

        threading.Thread(target=loop, name=f"karet-autorun-{slug}", daemon=True).start()

    def _wait_for_run(self, run_id: str) -> None:
        while run_is_active(self.instance, run_id, stale_after=self.settings.orphan_after_seconds):
            time.sleep(_FOREIGN_RUN_POLL_SECONDS)

    def _release(self, slug: str, busy: _Busy) -> None:
        with self._lock:
            self._release_locked(slug, busy)

    def _release_locked(self, slug: str, busy: _Busy) -> None:
        if self._busy.get(slug) is busy:  # never the record of a newer run of the same pipeline
            del self._busy[slug]
            self._idle.notify_all()


_state_lock = threading.Lock()


def auto_runs(app: FastAPI) -> AutoRuns:
    """The app's debounce state, created on first use."""
    with _state_lock:
        runs = getattr(app.state, "karet_auto_runs", None)
        if runs is None:
            runs = AutoRuns(app.state.instance, app.state.stores, app.state.settings)
            app.state.karet_auto_runs = runs
        return runs


def handle_records(runs: AutoRuns, records: list[Any]) -> EventsReceived:
    """Match created keys to pipelines and schedule each matched pipeline once."""
    lake_bucket = lake_bucket_of(runs.settings)
    wanted: dict[str, list[str]] = {}
    for record in records:
        key = created_key(record, lake_bucket)
        if key is None:
            continue
        for slug in runs.index.match(key):
            if key not in wanted.setdefault(slug, []):
                wanted[slug].append(key)
    heads: dict[str, ObjectInfo | None] = {}
    scheduled = []
    for slug, slug_keys in wanted.items():
        versions = []
        for key in slug_keys:
            if key not in heads:
                heads[key] = runs.stores.lake.head(key)  # the version now visible; None once deleted again
            if (info := heads[key]) is not None:
                versions.append(info)
        if versions and runs.submit(slug, versions):
            scheduled.append(slug)
    return EventsReceived(received=len(records), scheduled=scheduled)
