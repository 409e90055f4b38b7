"""The S3 event webhook: the shared-secret check, event records → created keys → the pipelines reading them.

Matched versions go to the debounce of automatic runs (``services.autoruns``). Records of other buckets than
the lake, keys outside every source prefix and keys Karet writes itself are counted, never run.
"""

import hmac
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import unquote_plus

from karet_api.schemas.events import EventsReceived
from karet_api.services.autoruns import AutoRuns
from karet_defs.catalog import list_slugs, read_pipeline
from karet_defs.errors import InvalidJson, KaretError, Unauthorized
from karet_defs.orchestration.sensors import raw_files_watch
from karet_defs.settings import Settings
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, Stores
from karet_defs.store.changes import Watch

_log = logging.getLogger("karet.api.webhook")

WEBHOOK_BODY_LIMIT = 1024 * 1024
CREATED_EVENT_PREFIXES = ("s3:ObjectCreated:", "ObjectCreated:")  # MinIO/RustFS, then AWS's own spelling
INDEX_TTL_SECONDS = 10.0
_INDEX_MISS_REFRESH_SECONDS = 1.0
UNAUTHORIZED_MESSAGE = "missing or invalid webhook secret"


def check_secret(expected_secret: str, presented: list[str]) -> None:
    """Fail closed: without ``KARET_WEBHOOK_SECRET`` every request is refused."""
    expected = expected_secret.encode()
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
    s3 = _mapping(record.get("s3"))
    bucket, obj = _mapping(s3.get("bucket")), _mapping(s3.get("object"))
    key = obj.get("key")
    if not isinstance(key, str) or not key:
        return None
    if lake_bucket is not None and bucket.get("name") != lake_bucket:
        return None  # warehouse or foreign writes must not loop back into runs
    return unquote_plus(key)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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


def handle_records(records: list[Any], index: PipelineIndex, runs: AutoRuns) -> EventsReceived:
    """Match created keys to pipelines and schedule each matched pipeline once."""
    lake_bucket = lake_bucket_of(runs.settings)
    wanted: dict[str, list[str]] = {}
    for record in records:
        key = created_key(record, lake_bucket)
        if key is None:
            continue
        for slug in index.match(key):
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
