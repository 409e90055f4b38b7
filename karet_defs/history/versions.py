"""Config history: every accepted save of a pipeline's config is a numbered version (Karet E4).

The history lives beside the config, so export, import and rename carry it: ``versions/<n>.json`` holds
version n's document byte for byte and ``versions/index.json`` the ``History`` record. The index is the one
commit point: ``update_history`` is a compare-and-swap on its ETag, re-run on a concurrent change, so of two
racing requests exactly one wins and the other sees the winner's state. A version's document is written
after the index names it, by the one request that numbered it (a reader may find it missing for that
moment). The live ``pipeline.json`` is matched to its version by MD5, so a run, a GET and a save agree on
which version is live even when writes race, and a config written behind Karet's back has no version.

In ``direct`` mode (Karet's behaviour, the default) a save writes the live config with a compare-and-swap
on its ETag and is recorded as the production version; in ``reviewed`` mode a save is a development
version, and the live config changes only when a version reaches production (``history.promotion``).
"""

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import jsonpatch
from pydantic import ValidationError

from karet_defs.config.validate import load_pipeline
from karet_defs.errors import (
    ConcurrentChange,
    ConfigVersionNotFound,
    KaretError,
    ObjectNotFound,
    PipelineConfigNotFound,
    PreconditionFailed,
    StaleConfig,
    Unprocessable,
)
from karet_defs.history.records import (
    Environment,
    History,
    PromotionMode,
    VersionRecord,
    VersionSource,
    now_iso,
)
from karet_defs.store import keys
from karet_defs.store.base import ObjectStore, Stores, normalise_etag
from karet_defs.store.reads import md5_hex, read_verified

JSON_TYPE = "application/json"
UNKNOWN_AUTHOR = "unknown"
# Enough for 50 writers racing on one index: each round lets one through.
_ATTEMPTS = 100
_BACKOFF_SECONDS = 0.02

T = TypeVar("T")


def read_history(store: ObjectStore, slug: str) -> tuple[History, str | None]:
    """The pipeline's history and the ETag of its index (None, with an empty history, when there is none)."""
    found = read_verified(store, keys.history_key(slug))
    if found is None:
        return History(), None
    body, etag = found
    try:
        return History.model_validate_json(body), etag
    except ValidationError as exc:
        raise KaretError(
            f"the config history of `{slug}` is unreadable: {exc.errors()[0]['msg']}",
            code="history_unreadable",
        ) from exc


def update_history(store: ObjectStore, slug: str, change: Callable[[History], T]) -> T:
    """Apply ``change`` to the stored history with a compare-and-swap, re-reading and re-applying it after a
    concurrent write; ``change`` raises to refuse, and must not act outside the history it is given."""
    key = keys.history_key(slug)
    for _ in range(_ATTEMPTS):
        history, etag = read_history(store, slug)
        result = change(history)
        body = history.model_dump_json(indent=1).encode()
        try:
            store.put(key, body, content_type=JSON_TYPE, if_match=etag, if_none_match=etag is None)
        except PreconditionFailed:
            time.sleep(random.uniform(0, _BACKOFF_SECONDS))
            continue
        return result
    raise ConcurrentChange(f"the history of `{slug}` kept changing under this request; try again")


def read_document(store: ObjectStore, slug: str, version: int) -> bytes:
    """Version ``version``'s document, byte for byte as it was saved."""
    try:
        return store.get(keys.version_key(slug, version))
    except ObjectNotFound as exc:
        raise ConfigVersionNotFound(
            f"the document of version {version} is not stored", extra={"version": version}
        ) from exc


def live_version(history: History, live_body: bytes | None) -> VersionRecord | None:
    """The version whose document is ``live_body`` (the live config), if any."""
    return history.by_etag(md5_hex(live_body)) if live_body is not None else None


def config_version_of(stores: Stores, slug: str) -> int | None:
    """The number of the version the live config is, None when it has none (written outside Karet)."""
    live = read_verified(stores.pipelines, keys.config_key(slug))
    if live is None:
        return None
    history, _ = read_history(stores.pipelines, slug)
    record = live_version(history, live[0])
    return record.version if record is not None else None


@dataclass(frozen=True)
class Working:
    """The config an editor works on: its bytes, their ETag, and which version they are."""

    body: bytes
    etag: str
    version: VersionRecord | None


def read_working(stores: Stores, slug: str) -> Working:
    """The live config in ``direct`` mode; in ``reviewed`` mode the newest version, which saves build on."""
    history, _ = read_history(stores.pipelines, slug)
    if history.promotion == "reviewed" and history.versions:
        newest = history.versions[-1]
        try:
            return Working(read_document(stores.pipelines, slug, newest.version), newest.etag, newest)
        except ConfigVersionNotFound:
            pass  # its document is being written this moment: the live config is the next best answer
    live = read_verified(stores.pipelines, keys.config_key(slug))
    if live is None:
        raise PipelineConfigNotFound(f"pipeline `{slug}` has no pipeline.json")
    return Working(live[0], live[1], live_version(history, live[0]))


@dataclass(frozen=True)
class Saved:
    version: VersionRecord
    etag: str = ""  # the ETag a client sends back: the live config's, or in reviewed mode the version's
    live: bool = False  # whether the live config changed


def save_config(
    stores: Stores,
    slug: str,
    body: bytes,
    *,
    author: str,
    note: str | None = None,
    source: VersionSource = "save",
    expected_version: int | None = None,
    if_match: str | None = None,
    reverted_from: int | None = None,
) -> Saved:
    """Validate ``body`` and record it as the next version, only over ``expected_version`` / ``if_match``
    when given (``StaleConfig`` / ``PreconditionFailed`` otherwise, nothing stored)."""
    load_pipeline(body)
    expected_etag = normalise_etag(if_match) if if_match is not None else None
    if expected_etag == "":
        raise PreconditionFailed("an empty If-Match never matches")
    history, _ = read_history(stores.pipelines, slug)
    common: dict[str, Any] = {
        "author": author,
        "note": note,
        "source": source,
        "reverted_from": reverted_from,
    }
    if history.promotion == "reviewed":
        return _save_development(stores, slug, body, expected_version, expected_etag, common)
    return _save_live(stores, slug, body, expected_version, expected_etag, common)


def _stale(expected: int, current: VersionRecord | None) -> StaleConfig:
    got = current.version if current is not None else "<none>"
    return StaleConfig(
        f"config version {expected} is stale: the current version is {got}",
        extra={"current_version": current.version if current is not None else None},
    )


def _etag_mismatch(expected: str, got: str | None) -> PreconditionFailed:
    return PreconditionFailed(f"ETag mismatch: expected {expected}, got {got or '<none>'}")


def _save_live(
    stores: Stores,
    slug: str,
    body: bytes,
    expected_version: int | None,
    expected_etag: str | None,
    common: dict[str, Any],
) -> Saved:
    store, key = stores.pipelines, keys.config_key(slug)
    for _ in range(_ATTEMPTS):
        history, _ = read_history(store, slug)
        live = read_verified(store, key)
        live_body, live_etag = live if live is not None else (None, None)
        current = live_version(history, live_body)
        if expected_version is not None and (current is None or current.version != expected_version):
            raise _stale(expected_version, current)
        if expected_etag is not None and expected_etag != live_etag:
            raise _etag_mismatch(expected_etag, live_etag)
        try:
            # Always over the ETag just read: the version check above then holds at the moment of writing.
            etag = store.put(
                key, body, content_type=JSON_TYPE, if_match=live_etag, if_none_match=live is None
            )
        except PreconditionFailed:
            if expected_version is None and expected_etag is None:
                continue  # an unconditional save goes over whatever won: read again and write again
            history, _ = read_history(store, slug)
            now = read_verified(store, key)
            if expected_version is not None:
                raise _stale(expected_version, live_version(history, now[0] if now else None)) from None
            raise _etag_mismatch(expected_etag or "", now[1] if now else None) from None
        record = _append(
            stores, slug, body, environment="production", live_etag=etag, baseline=live_body, **common
        )
        return Saved(record, etag, live=True)
    raise ConcurrentChange(f"the config of `{slug}` kept changing under this request; try again")


def _save_development(
    stores: Stores,
    slug: str,
    body: bytes,
    expected_version: int | None,
    expected_etag: str | None,
    common: dict[str, Any],
) -> Saved:
    def check(history: History) -> None:
        if history.promotion != "reviewed":
            raise ConcurrentChange(f"`{slug}` left reviewed mode during this save; save again")
        newest = history.versions[-1] if history.versions else None
        if expected_version is not None and (newest is None or newest.version != expected_version):
            raise _stale(expected_version, newest)
        if expected_etag is not None and (newest is None or newest.etag != expected_etag):
            raise _etag_mismatch(expected_etag, newest.etag if newest is not None else None)

    record = _append(stores, slug, body, environment="development", check=check, **common)
    return Saved(record, record.etag, live=False)


def _append(
    stores: Stores,
    slug: str,
    body: bytes,
    *,
    author: str,
    note: str | None,
    source: VersionSource,
    environment: Environment,
    reverted_from: int | None = None,
    live_etag: str | None = None,
    baseline: bytes | None = None,
    check: Callable[[History], None] | None = None,
) -> VersionRecord:
    """Record ``body`` as the next version; ``baseline`` (the config it replaced) becomes version 1 of a
    pipeline that had no history yet. A production version whose write was overtaken by a later save is
    recorded retired: the live config is the other one."""
    store = stores.pipelines
    etag = md5_hex(body)

    def change(history: History) -> tuple[list[tuple[VersionRecord, bytes]], list[int]]:
        if check is not None:
            check(history)
        documents: list[tuple[VersionRecord, bytes]] = []
        if not history.versions and baseline is not None:
            first = _baseline_record(baseline, 1)
            history.versions.append(first)
            documents.append((first, baseline))
        record = VersionRecord(
            version=history.latest + 1,
            author=author,
            note=note,
            created_at=now_iso(),
            environment="retired" if environment == "production" else environment,
            etag=etag,
            source=source,
            reverted_from=reverted_from,
        )
        history.versions.append(record)
        if environment == "production" and (live_etag is None or _live_etag(store, slug) == live_etag):
            history.make_production(record)
        documents.append((record, body))
        return documents, history.prune()

    documents, dropped = update_history(store, slug, change)
    for record, document in documents:
        store.put(keys.version_key(slug, record.version), document, content_type=JSON_TYPE)
    if dropped:
        store.delete_many([keys.version_key(slug, n) for n in dropped])
    return documents[-1][0]


def _baseline_record(body: bytes, version: int) -> VersionRecord:
    return VersionRecord(
        version=version,
        author=UNKNOWN_AUTHOR,
        note="the config as it was before its history was kept",
        created_at=now_iso(),
        environment="production",
        etag=md5_hex(body),
        source="baseline",
    )


def _live_etag(store: ObjectStore, slug: str) -> str | None:
    info = store.head(keys.config_key(slug))
    return info.etag if info is not None else None


def record_live(
    stores: Stores, slug: str, *, author: str, note: str | None, source: VersionSource
) -> VersionRecord:
    """Record the live config (just written by a template or an import) as a production version, unless it
    already is one (an imported archive that brought its history)."""
    live = read_verified(stores.pipelines, keys.config_key(slug))
    if live is None:
        raise PipelineConfigNotFound(f"pipeline `{slug}` has no pipeline.json")
    history, _ = read_history(stores.pipelines, slug)
    current = live_version(history, live[0])
    if current is not None:
        return current
    return _append(
        stores,
        slug,
        live[0],
        author=author,
        note=note,
        source=source,
        environment="production",
        live_etag=live[1],
    )


def record_development(
    stores: Stores, slug: str, body: bytes, *, author: str, note: str | None, source: VersionSource
) -> VersionRecord:
    """Record a validated ``body`` as a development version, whatever the mode: the live config stays."""
    load_pipeline(body)
    live = read_verified(stores.pipelines, keys.config_key(slug))
    return _append(
        stores,
        slug,
        body,
        author=author,
        note=note,
        source=source,
        environment="development",
        baseline=live[0] if live is not None else None,
    )


def revert(
    stores: Stores,
    slug: str,
    version: int,
    *,
    author: str,
    note: str | None = None,
    expected_version: int | None = None,
    if_match: str | None = None,
) -> Saved:
    """Write version ``version``'s document forward as a new version, once it validates again."""
    history, _ = read_history(stores.pipelines, slug)
    history.get(version)
    body = read_document(stores.pipelines, slug, version)
    return save_config(
        stores,
        slug,
        body,
        author=author,
        note=note or f"revert to version {version}",
        source="revert",
        expected_version=expected_version,
        if_match=if_match,
        reverted_from=version,
    )


def diff_against_live(stores: Stores, slug: str, version: int) -> tuple[list[dict[str, Any]], int | None]:
    """The JSON Patch (RFC 6902) that turns the live config into version ``version`` (what a revert would
    change), ``layout`` ignored; and the live config's version."""
    history, _ = read_history(stores.pipelines, slug)
    history.get(version)
    target = _without_layout(read_document(stores.pipelines, slug, version))
    live = read_verified(stores.pipelines, keys.config_key(slug))
    if live is None:
        raise PipelineConfigNotFound(f"pipeline `{slug}` has no pipeline.json")
    current = live_version(history, live[0])
    patch = jsonpatch.make_patch(_without_layout(live[0]), target)
    return list(patch), current.version if current is not None else None


def _without_layout(body: bytes) -> Any:
    document = json.loads(body)
    if isinstance(document, dict):
        document.pop("layout", None)
    return document


def set_promotion(stores: Stores, slug: str, mode: PromotionMode) -> PromotionMode:
    """Switch the pipeline between ``direct`` and ``reviewed``; the live config becomes a version first
    if it is none yet, so production always is one."""
    live = read_verified(stores.pipelines, keys.config_key(slug))
    if live is None:
        raise PipelineConfigNotFound(f"pipeline `{slug}` has no pipeline.json")

    def change(history: History) -> list[tuple[VersionRecord, bytes]]:
        history.promotion = mode
        current = live_version(history, live[0])
        if current is not None:
            history.make_production(current)
            return []
        record = _baseline_record(live[0], history.latest + 1)
        record.environment = "retired"
        history.versions.append(record)
        history.make_production(record)
        return [(record, live[0])]

    for record, document in update_history(stores.pipelines, slug, change):
        stores.pipelines.put(keys.version_key(slug, record.version), document, content_type=JSON_TYPE)
    return mode


def sync_live(stores: Stores, slug: str) -> bool:
    """Make the live config the production version's document; return whether it changed.

    Each write is over the ETag read before the history, so of two syncs racing the one that read the older
    history fails its write and, reading again, finds the newer production version already live.
    """
    store, key = stores.pipelines, keys.config_key(slug)
    changed = False
    for _ in range(_ATTEMPTS):
        live = read_verified(store, key)
        history, _ = read_history(store, slug)
        production = history.production()
        if production is None or (live is not None and md5_hex(live[0]) == production.etag):
            return changed
        document = read_document(store, slug, production.version)
        try:
            store.put(
                key,
                document,
                content_type=JSON_TYPE,
                if_match=live[1] if live else None,
                if_none_match=live is None,
            )
            changed = True
        except PreconditionFailed:
            continue
    raise ConcurrentChange(f"the config of `{slug}` kept changing under this request; try again")


def rehome_history(files: Mapping[str, bytes], relocate: Callable[[bytes], bytes]) -> dict[str, bytes]:
    """The history files of a pipeline that moved (``versions/…`` relative paths → bytes), each version's
    document passed through ``relocate`` (its ``path_prefix`` values rewritten) and the index's MD5s
    recomputed, so the moved live config still matches its version."""
    moved: dict[str, bytes] = {}
    etags: dict[int, str] = {}
    for path, body in files.items():
        name = path[len(keys.VERSIONS_FOLDER) :]
        if path.startswith(keys.VERSIONS_FOLDER) and name.removesuffix(".json").isdigit():
            moved[path] = relocate(body)
            etags[int(name.removesuffix(".json"))] = md5_hex(moved[path])
    index_path = keys.VERSIONS_FOLDER + keys.HISTORY_NAME
    if index_path in files:
        try:
            history = History.model_validate_json(files[index_path])
        except ValidationError as exc:
            raise Unprocessable(
                f"{index_path} is not a config history: {exc.errors()[0]['msg']}", code="invalid_history"
            ) from exc
        for record in history.versions:
            record.etag = etags.get(record.version, record.etag)
        moved[index_path] = history.model_dump_json(indent=1).encode()
    return moved
