"""Which raw files are new or changed since a cursor: pure functions over ``ObjectStore`` listings.

A ``ChangeCursor`` is a high-water mark (``newest_stamp``, the newest ``last_modified`` seen), a
``cutoff`` and the exact version (``<etag>@<whole seconds>``) of every object modified after the cutoff. An
object modified at or before the cutoff counts as seen; a later one is new unless the window holds its exact
version. The cutoff trails the high-water mark by ``SETTLE_SECONDS`` because S3 stamps ``LastModified`` when
an upload *starts*: a slow upload becomes visible after quicker, later ones, with an older stamp.
Consequences:

- many files stamped in the same second are told apart by key, so one landing after a tick in that same
  second is still new (a strict ``last_modified > newest_stamp`` test misses it);
- a changed file (same key, new body) has a new ETag and stamp: new; a deleted file drops out of the next
  window; deleted and re-created, it has a new stamp: new;
- the cursor holds only the uploads of the last settle window, capped at ``MAX_WINDOW`` entries (the cutoff
  then moves up), so it never grows with the number of objects under the prefix.

The same structure records which versions a run has *covered* (``advance``), for the webhook/sensor dedupe.
"""

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, ObjectStore

SETTLE_SECONDS = 300.0
MAX_WINDOW = 10_000
_CURSOR_VERSION = 1
# Folders under ``pipelines/<slug>/`` that Karet itself writes: never raw input, whatever a prefix says.
_OWN_FOLDERS = frozenset(
    {
        keys.TABLES_FOLDER.rstrip("/"),
        keys.ENVIRONMENTS_FOLDER.rstrip("/"),
        keys.DRAFTS_FOLDER.rstrip("/"),
        keys.QUERIES_FOLDER.rstrip("/"),
        keys.VERSIONS_FOLDER.rstrip("/"),
        keys.DASHBOARDS_FOLDER.rstrip("/"),
    }
)
# Files directly under ``pipelines/<slug>/`` that Karet itself writes.
_OWN_FILES = frozenset({keys.CONFIG_NAME, keys.PREVIEW_NAME, keys.PREVIEW_KEEP_NAME})


def version_of(info: ObjectInfo) -> str:
    """An object version: ETag plus whole-second stamp (HEAD and LIST agree on seconds, not on millis)."""
    return f"{info.etag}@{math.floor(info.last_modified.timestamp())}"


def _seconds_of(version: str) -> int:
    return int(version.rpartition("@")[2])


@dataclass(frozen=True)
class ChangeCursor:
    """What a watcher has seen: everything stamped at or before ``cutoff``, plus the exact ``window``."""

    newest_stamp: float | None = None
    cutoff: float | None = None
    window: dict[str, str] = field(default_factory=dict)

    def covers(self, info: ObjectInfo) -> bool:
        """Whether this version of the object has been seen."""
        if self.cutoff is not None and info.last_modified.timestamp() <= self.cutoff:
            return True
        return self.window.get(info.key) == version_of(info)

    def advance(self, infos: Iterable[ObjectInfo], *, settle: float = SETTLE_SECONDS) -> "ChangeCursor":
        """This cursor plus the given versions (a coverage record grows this way)."""
        newest = self.newest_stamp
        window = dict(self.window)
        for info in infos:
            stamp = info.last_modified.timestamp()
            newest = stamp if newest is None else max(newest, stamp)
            window[info.key] = version_of(info)
        return _bounded_cursor(newest, self.cutoff, window, settle=settle, max_window=MAX_WINDOW)

    def merge(self, other: "ChangeCursor", *, settle: float = SETTLE_SECONDS) -> "ChangeCursor":
        """A record covering what either covers (a key seen in both keeps its newer version)."""
        if other.newest_stamp is None:
            return self
        if self.newest_stamp is None:
            return other
        window = dict(self.window)
        for key, version in other.window.items():
            if key not in window or _seconds_of(version) >= _seconds_of(window[key]):
                window[key] = version
        cutoffs = [c for c in (self.cutoff, other.cutoff) if c is not None]
        return _bounded_cursor(
            max(self.newest_stamp, other.newest_stamp),
            max(cutoffs, default=None),
            window,
            settle=settle,
            max_window=MAX_WINDOW,
        )

    def to_json(self) -> str:
        # The field keeps its first name, ``hwm``: cursors already stored in Dagster's instance carry it.
        return json.dumps(
            {"v": _CURSOR_VERSION, "hwm": self.newest_stamp, "cutoff": self.cutoff, "window": self.window},
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> "ChangeCursor":
        """The cursor serialised by ``to_json``; None or empty is the empty cursor (nothing seen)."""
        if not text:
            return cls()
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
            raise ValueError(f"not a change cursor of version {_CURSOR_VERSION}: {text[:80]!r}")
        return cls(newest_stamp=data["hwm"], cutoff=data["cutoff"], window=dict(data["window"]))


@dataclass(frozen=True)
class Changes:
    """The objects a listing shows as new or changed since the cursor, and the cursor after it."""

    changed: list[ObjectInfo]
    cursor: ChangeCursor


def detect_changes(
    objects: Iterable[ObjectInfo],
    cursor: ChangeCursor,
    *,
    settle: float = SETTLE_SECONDS,
    max_window: int = MAX_WINDOW,
) -> Changes:
    """Stream a full listing once: the versions ``cursor`` has not seen, and the cursor that has seen all."""
    changed: list[ObjectInfo] = []
    newest = cursor.newest_stamp
    floor = cursor.cutoff if cursor.cutoff is not None else -math.inf
    recent: dict[str, tuple[float, str]] = {}
    for info in objects:
        if not cursor.covers(info):
            changed.append(info)
        stamp = info.last_modified.timestamp()
        newest = stamp if newest is None else max(newest, stamp)
        if stamp > floor:
            recent[info.key] = (stamp, version_of(info))
            if len(recent) > 2 * max_window + 1024:
                # A first tick over a large prefix: the final cutoff is at least newest - settle, drop
                # what falls below it already so memory stays bounded too.
                floor = max(floor, newest - settle)
                recent = {k: v for k, v in recent.items() if v[0] > floor}
    window = {key: version for key, (stamp, version) in recent.items()}
    stamps = {key: stamp for key, (stamp, _) in recent.items()}
    bounded = _bounded_cursor(
        newest, cursor.cutoff, window, settle=settle, max_window=max_window, stamps=stamps
    )
    return Changes(changed, bounded)


def _bounded_cursor(
    newest_stamp: float | None,
    cutoff: float | None,
    window: dict[str, str],
    *,
    settle: float,
    max_window: int,
    stamps: dict[str, float] | None = None,
) -> ChangeCursor:
    # The cutoff trails the newest stamp by ``settle`` and the window keeps only what lies after it, at most
    # ``max_window`` entries: what keeps a cursor small however many objects it has seen.
    if newest_stamp is None:
        return ChangeCursor(None, cutoff, {})

    def stamp(key: str) -> float:
        # Whole seconds are all a stored entry keeps; +1 makes "at or before the cutoff" certain, never hoped.
        return stamps[key] if stamps is not None else _seconds_of(window[key]) + 1

    new_cutoff = newest_stamp - settle if cutoff is None else max(cutoff, newest_stamp - settle)
    kept = {key: version for key, version in window.items() if stamp(key) > new_cutoff}
    if len(kept) > max_window:
        newest_first = sorted((stamp(key) for key in kept), reverse=True)
        new_cutoff = newest_first[max_window]
        kept = {key: version for key, version in kept.items() if stamp(key) > new_cutoff}
    return ChangeCursor(newest_stamp, new_cutoff, kept)


@dataclass(frozen=True)
class Watch:
    """The raw files of one pipeline: (key prefix, accepted extensions) per source."""

    rules: tuple[tuple[str, tuple[str, ...]], ...]

    def matches(self, key: str) -> bool:
        """Whether a created object at ``key`` is raw input of this pipeline."""
        if is_karet_output(key):
            return False
        lowered = key.lower()
        return any(key.startswith(prefix) and lowered.endswith(exts) for prefix, exts in self.rules)

    def prefixes(self) -> list[str]:
        """The prefixes to list: sorted, none inside another, so their listings are disjoint and in order."""
        result: list[str] = []
        for prefix in sorted({prefix for prefix, _ in self.rules}):
            if not result or not prefix.startswith(result[-1]):
                result.append(prefix)
        return result


def list_watched(store: ObjectStore, watch: Watch) -> Iterator[ObjectInfo]:
    """Every object ``watch`` matches, listed page by page in key order."""
    for prefix in watch.prefixes():
        for info in store.list(prefix):
            if watch.matches(info.key):
                yield info


def is_karet_output(key: str) -> bool:
    """Keys Karet writes itself (configs, config history, dashboards, saved queries, tables under
    ``clean/``): never run triggers."""
    if not key.startswith(keys.PIPELINES_PREFIX):
        return False
    parts = key.split("/")
    if len(parts) < 3:
        return False
    if len(parts) == 3:
        return parts[2] in _OWN_FILES
    return parts[2] in _OWN_FOLDERS


def batch_digest(infos: Iterable[ObjectInfo]) -> str:
    """A stable digest of a batch of versions, in the order given (listings are in key order)."""
    digest = hashlib.sha256()
    for info in infos:
        digest.update(f"{info.key}\0{version_of(info)}\n".encode())
    return digest.hexdigest()[:32]
