"""Services over one pipeline's objects: create, delete and rename it, its config and its preview.

A pipeline is every object under ``pipelines/<slug>/`` in the three buckets (one store when they share a
bucket); it exists for listings once ``pipeline.json`` does. So creating writes the config first, with a
conditional put that lets the store pick one winner among concurrent creates, while renaming writes it last,
once every other object has been copied, and deletes the old prefix only after that. Renaming or deleting a
pipeline while one of its runs is queued or running is refused (``pipeline_busy``): the run would go on
writing under the old prefix. The config API is a compare-and-swap on the store's own conditional put
(REFERENCE §4.4, SPEC §6).
"""

import contextlib
import json
import logging
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import dagster as dg

from karet_api.services.jobs import job_record
from karet_defs.dashboards.preview import PNG_TYPE, keep_upload
from karet_defs.errors import (
    Conflict,
    KaretError,
    NotFound,
    ObjectNotFound,
    PreconditionFailed,
    Unprocessable,
)
from karet_defs.history import versions
from karet_defs.orchestration.jobs import TAG_PIPELINE
from karet_defs.orchestration.liveness import fail_dead_runs
from karet_defs.scratch import scratch_dir
from karet_defs.slugs import relocate_path_prefixes, sanitise_slug
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, ObjectStore, Stores, normalise_etag
from karet_defs.store.reads import read_verified
from karet_defs.templates import TEMPLATE_IDS, content_type_for, install_template

_log = logging.getLogger("karet.api")

JSON_TYPE = "application/json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def distinct_stores(stores: Stores) -> list[ObjectStore]:
    """The pipelines, lake and warehouse stores, each once even when buckets are shared."""
    unique: dict[int, ObjectStore] = {}
    for store in (stores.pipelines, stores.lake, stores.warehouse):
        unique.setdefault(id(store), store)
    return list(unique.values())


def pipeline_objects(stores: Stores, slug: str) -> list[tuple[ObjectStore, ObjectInfo]]:
    """Every object under ``pipelines/<slug>/`` with the store holding it, bucket by bucket."""
    prefix = keys.pipeline_prefix(slug)
    return [(store, info) for store in distinct_stores(stores) for info in store.list(prefix)]


def already_exists(slug: str) -> Conflict:
    return Conflict(f"pipeline `{slug}` already exists", extra={"pipeline": slug})


def ensure_slug_free(stores: Stores, slug: str) -> None:
    """``Conflict`` when ``pipelines/<slug>/pipeline.json`` exists."""
    if stores.pipelines.head(keys.config_key(slug)) is not None:
        raise already_exists(slug)


def ensure_idle(instance: dg.DagsterInstance, slug: str, *, orphan_after: float) -> None:
    """``pipeline_busy`` (409) while a run of the pipeline is queued or running (orphans do not count)."""
    fail_dead_runs(instance, slug)
    records = instance.get_run_records(dg.RunsFilter(tags={TAG_PIPELINE: slug}, statuses=_UNFINISHED))
    active = [r for r in records if job_record(instance, r, orphan_after=orphan_after).status != "failed"]
    if active:
        raise Conflict(
            f"pipeline `{slug}` has a run in progress ({active[0].dagster_run.run_id}); "
            "try again when it has ended",
            code="pipeline_busy",
            extra={"pipeline": slug},
        )


def discard(written: Iterable[tuple[ObjectStore, str]]) -> None:
    """Best-effort removal of the objects a failed multi-object write had already stored."""
    for store, key in written:
        # The store may be what failed; the caller re-raises the original error, which matters more.
        with contextlib.suppress(KaretError):
            store.delete(key)


def create_pipeline(
    stores: Stores, slug: str, template: str, *, author: str = versions.UNKNOWN_AUTHOR
) -> None:
    """Install ``template`` under a new slug, its config version 1; ``Conflict`` if its config exists, even
    under a race."""
    if template not in TEMPLATE_IDS:
        raise Unprocessable(
            f"unknown template {template!r}; known templates: {', '.join(TEMPLATE_IDS)}",
            code="invalid_template",
        )
    install_template(stores, slug, template, exclusive=True)
    note = f"created from the {template} template"
    versions.record_live(stores, slug, author=author, note=note, source="template")


def delete_pipeline(stores: Stores, slug: str) -> int:
    """Delete every object of the pipeline in every bucket; return how many."""
    objects = pipeline_objects(stores, slug)
    if not objects:
        raise NotFound(f"pipeline `{slug}` does not exist", extra={"pipeline": slug})
    return _delete_objects(stores, slug, objects)


def _delete_objects(stores: Stores, slug: str, objects: list[tuple[ObjectStore, ObjectInfo]]) -> int:
    config_key = keys.config_key(slug)
    deleted = 0
    # The config goes first: a delete that fails halfway leaves unlisted leftovers, which a retry removes,
    # rather than a listed pipeline whose files are gone.
    if any(store is stores.pipelines and info.key == config_key for store, info in objects):
        stores.pipelines.delete(config_key)
        deleted += 1
    for store in distinct_stores(stores):
        rest = [
            i.key for s, i in objects if s is store and not (s is stores.pipelines and i.key == config_key)
        ]
        if rest:
            deleted += store.delete_many(rest)
    return deleted


def rename_pipeline(stores: Stores, old: str, new: str) -> int:
    """Copy every object from ``old``'s prefix to ``new``'s, then delete the old ones; return how many.

    The config is written last and only if ``new`` has none, so until then ``new`` does not exist for
    listings; any failure before that removes the copies and leaves ``old`` untouched.
    """
    if old == new:
        raise Unprocessable("new slug equals old slug", code="unchanged")
    everything = pipeline_objects(stores, old)
    objects = [(s, i) for s, i in everything if not i.key.endswith("/")]  # folder markers are not copied
    if not objects:
        raise NotFound(f"pipeline `{old}` does not exist", extra={"pipeline": old})
    ensure_slug_free(stores, new)
    old_prefix, new_prefix = keys.pipeline_prefix(old), keys.pipeline_prefix(new)
    old_config_key = keys.config_key(old)
    config: bytes | None = None
    history: dict[str, bytes] = {}
    written: list[tuple[ObjectStore, str]] = []
    try:
        with scratch_dir("rename") as tmp:
            for store, info in objects:
                relative = info.key[len(old_prefix) :]
                if store is stores.pipelines and info.key == old_config_key:
                    config = store.get(info.key)
                    continue
                if store is stores.pipelines and relative.startswith(keys.VERSIONS_FOLDER):
                    history[relative] = store.get(info.key)  # moved with the config's prefixes, below
                    continue
                target = new_prefix + relative
                copy_object(store, info.key, target, Path(tmp) / "object")
                written.append((store, target))
        relocate = partial(relocate_path_prefixes, old=old, new=new)
        for relative, body in versions.rehome_history(history, relocate).items():
            stores.pipelines.put(new_prefix + relative, body, content_type=JSON_TYPE)
            written.append((stores.pipelines, new_prefix + relative))
        if config is not None:
            new_config = relocate_path_prefixes(config, old, new)
            try:
                stores.pipelines.put(
                    keys.config_key(new), new_config, content_type=JSON_TYPE, if_none_match=True
                )
            except PreconditionFailed as exc:
                raise already_exists(new) from exc
            written.append((stores.pipelines, keys.config_key(new)))
    except BaseException:
        discard(written)
        raise
    _delete_objects(stores, old, everything)
    return len(written)


def copy_object(store: ObjectStore, source: str, target: str, scratch: Path) -> None:
    """Copy one object within a store, through a local file so large objects never sit in memory."""
    path = store.local_path(source)
    if path is None:
        store.download(source, scratch)
        path = scratch
    store.put_file(target, path, content_type=content_type_for(target))


def read_config(stores: Stores, slug: str, *, draft: bool = False) -> tuple[versions.Working, bool]:
    """The config the editor works on (``versions.read_working``) and whether it is the editor's draft:
    asked for the draft, the working config answers when there is none."""
    if draft:
        found = read_verified(stores.pipelines, keys.draft_config_key(slug))
        if found is not None:
            return versions.Working(*found, version=None), True
    return versions.read_working(stores, slug), False


def write_config(
    stores: Stores,
    slug: str,
    body: bytes,
    *,
    author: str,
    if_match: str | None = None,
    expected_version: int | None = None,
    note: str | None = None,
) -> versions.Saved:
    """Record ``body`` verbatim as the next config version (``versions.save_config``: validated, only over
    ``if_match`` / ``expected_version`` when given); saving retires the editor's draft."""
    _check_json(body)
    try:
        saved = versions.save_config(
            stores, slug, body, author=author, note=note, expected_version=expected_version, if_match=if_match
        )
    except KaretError as exc:
        exc.extra = {**exc.extra, "ok": False}  # Karet's save answered every refusal with ``ok: false``
        raise
    stores.pipelines.delete(keys.draft_config_key(slug))
    return saved


def write_draft(stores: Stores, slug: str, body: bytes, if_match: str | None) -> str:
    """Store ``body`` (any JSON) as the editor's draft, only over ``if_match`` when given; return its ETag."""
    _check_json(body)
    key = keys.draft_config_key(slug)
    expected = normalise_etag(if_match) if if_match is not None else None
    try:
        if expected == "":
            raise PreconditionFailed("an empty If-Match never matches")
        return stores.pipelines.put(key, body, content_type=JSON_TYPE, if_match=expected)
    except PreconditionFailed as exc:
        # Read only to word the message; the decision was the store's conditional put.
        current = stores.pipelines.head(key)
        got = current.etag if current is not None else "<none>"
        raise PreconditionFailed(
            f"ETag mismatch: expected {expected}, got {got}", extra={"ok": False}
        ) from exc


def _check_json(body: bytes) -> None:
    try:
        json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the decoder goes
        raise Unprocessable(f"invalid_json: {exc}", code="invalid_json", extra={"ok": False}) from exc


def read_preview(stores: Stores, raw_slug: str) -> bytes | None:
    """The stored preview, or None when it is missing or cannot be read (the page shows a placeholder)."""
    try:
        return stores.pipelines.get(keys.preview_key(sanitise_slug(raw_slug)))
    except ObjectNotFound:
        return None
    except KaretError as exc:
        _log.warning("preview of %r unreadable: %s", raw_slug, exc.message)
        return None


def has_preview(stores: Stores, slug: str) -> bool:
    return stores.pipelines.head(keys.preview_key(slug)) is not None


def save_preview(stores: Stores, slug: str, body: bytes, *, keep: bool = False) -> None:
    """Store a PNG as the pipeline's preview, kept over the ones runs render when ``keep``, else only until
    the next run; anything but a PNG is refused."""
    if not body.startswith(PNG_MAGIC):
        raise Unprocessable("the preview must be a PNG image", code="invalid_png")
    # The marker goes first when keeping, last when not, so a run rendering meanwhile never overwrites an
    # upload meant to be kept.
    if keep:
        keep_upload(stores, slug, True)
    stores.pipelines.put(keys.preview_key(slug), body, content_type=PNG_TYPE)
    if not keep:
        keep_upload(stores, slug, False)
