"""Sandbox runs: a config version in QA or UAT run on the production raw files into tables of its own.

A sandbox run is an ordinary clean engine run (``engine.run.run_pipeline``) over a view of the stores, so the
engine knows nothing of environments: the pipelines view serves the version's document at the config key,
and the warehouse view moves production's tables prefix ``pipelines/<slug>/clean/`` to
``pipelines/<slug>/env/<environment>/clean/`` in every key and table location it is given. The warehouse
view refuses every write outside that prefix and the pipelines view every write at all, so a sandbox run
cannot change anything production reads, whatever the engine becomes. Raw files come from the lake as they
are. Each commit records the version and environment that made it: ``history.impact`` reads whose tables a
sandbox holds from there, so a sandbox needs no state of its own (a later run in the same environment, of
another version, replaces it).
"""

import builtins
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from karet_defs.config.models import Pipeline
from karet_defs.config.validate import load_pipeline
from karet_defs.engine import delta
from karet_defs.engine.report import RunReport
from karet_defs.engine.run import run_pipeline
from karet_defs.errors import InvalidEnvironment, KaretError
from karet_defs.history.records import Environment, History, VersionRecord
from karet_defs.history.versions import read_document, read_history
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, ObjectStore, Stores, TableLocation
from karet_defs.store.reads import md5_hex

SANDBOX_ENVIRONMENTS: tuple[Environment, ...] = ("qa", "uat")
META_CONFIG_VERSION = "karet.config_version"
META_ENVIRONMENT = "karet.environment"
SANDBOX_WRITE_REFUSED = "sandbox_write_refused"


def _refused(key: str, why: str) -> KaretError:
    return KaretError(f"a sandbox run may not write {key}: {why}", code=SANDBOX_WRITE_REFUSED)


class EnvironmentWarehouse:
    """The warehouse as a sandbox run sees it: production's tables prefix is the environment's."""

    def __init__(self, inner: ObjectStore, slug: str, environment: str) -> None:
        self.inner = inner
        self.production = keys.tables_prefix(slug)
        self.sandbox = keys.sandbox_tables_prefix(slug, environment)

    def _key(self, key: str) -> str:
        if key.startswith(self.production):
            return self.sandbox + key[len(self.production) :]
        return key

    def _writable(self, key: str) -> str:
        if not key.startswith(self.production):
            raise _refused(key, f"only the tables under {self.production} are moved to {self.sandbox}")
        return self._key(key)

    def _back(self, info: ObjectInfo) -> ObjectInfo:
        return ObjectInfo(
            self.production + info.key[len(self.sandbox) :], info.size, info.etag, info.last_modified
        )

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        if prefix.startswith(self.production):
            after = self._key(start_after) if start_after is not None else None
            yield from map(self._back, self.inner.list(self._key(prefix), start_after=after))
        elif self.production.startswith(prefix):
            # Production's tables and the sandbox's would have to be merged out of key order: no caller
            # needs it, and answering with production's would be a lie.
            raise KaretError(
                f"a sandbox view cannot list {prefix}, which holds the tables it moves",
                code="sandbox_listing",
            )
        else:
            yield from self.inner.list(prefix, start_after=start_after)

    def head(self, key: str) -> ObjectInfo | None:
        info = self.inner.head(self._key(key))
        return self._back(info) if info is not None and key.startswith(self.production) else info

    def get(self, key: str) -> bytes:
        return self.inner.get(self._key(key))

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return self.inner.get_range(self._key(key), start, end)

    def download(self, key: str, dest: Path) -> None:
        self.inner.download(self._key(key), dest)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(self._key(key))

    def table_location(self, prefix: str) -> TableLocation:
        return self.inner.table_location(self._key(prefix))

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        return self.inner.put(
            self._writable(key),
            data,
            content_type=content_type,
            if_match=if_match,
            if_none_match=if_none_match,
        )

    def put_file(self, key: str, src: Path, *, content_type: str | None = None) -> str:
        return self.inner.put_file(self._writable(key), src, content_type=content_type)

    def delete(self, key: str) -> None:
        self.inner.delete(self._writable(key))

    def delete_many(self, keys: builtins.list[str]) -> int:
        return self.inner.delete_many([self._writable(key) for key in keys])


class VersionPipelines:
    """The pipelines store, read-only, with one version's document as the pipeline's config."""

    def __init__(self, inner: ObjectStore, slug: str, document: bytes) -> None:
        self.inner = inner
        self.config_key = keys.config_key(slug)
        self.document = document
        self.info = ObjectInfo(self.config_key, len(document), md5_hex(document), datetime.now(UTC))

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        for info in self.inner.list(prefix, start_after=start_after):
            yield self.info if info.key == self.config_key else info

    def head(self, key: str) -> ObjectInfo | None:
        return self.info if key == self.config_key else self.inner.head(key)

    def get(self, key: str) -> bytes:
        return self.document if key == self.config_key else self.inner.get(key)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        if key == self.config_key:
            return self.document[start : end + 1]
        return self.inner.get_range(key, start, end)

    def download(self, key: str, dest: Path) -> None:
        if key == self.config_key:
            dest.write_bytes(self.document)
        else:
            self.inner.download(key, dest)

    def local_path(self, key: str) -> Path | None:
        return None if key == self.config_key else self.inner.local_path(key)

    def table_location(self, prefix: str) -> TableLocation:
        return self.inner.table_location(prefix)

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        raise _refused(key, "the pipeline's own objects are production's")

    def put_file(self, key: str, src: Path, *, content_type: str | None = None) -> str:
        raise _refused(key, "the pipeline's own objects are production's")

    def delete(self, key: str) -> None:
        raise _refused(key, "the pipeline's own objects are production's")

    def delete_many(self, keys: builtins.list[str]) -> int:
        raise _refused(", ".join(keys[:3]), "the pipeline's own objects are production's")


def sandbox_record(history: History, version: int) -> VersionRecord:
    """The version, if it is in an environment that runs in a sandbox; ``InvalidEnvironment`` otherwise."""
    record = history.get(version)
    if record.environment not in SANDBOX_ENVIRONMENTS:
        raise InvalidEnvironment(
            f"version {version} is in {record.environment}: only versions in qa or uat run in a sandbox",
            extra={"version": version, "environment": record.environment},
        )
    return record


def sandbox_environment(stores: Stores, slug: str, version: int) -> Environment:
    """The environment whose sandbox a run of the version writes now: the one it is in."""
    history, _ = read_history(stores.pipelines, slug)
    return sandbox_record(history, version).environment


def environment_stores(stores: Stores, slug: str, environment: str) -> Stores:
    """The stores with the environment's sandbox tables in production's place (configs unchanged)."""
    if environment not in SANDBOX_ENVIRONMENTS:
        raise InvalidEnvironment(f"`{environment}` has no sandbox: only qa and uat do")
    return Stores(stores.pipelines, stores.lake, EnvironmentWarehouse(stores.warehouse, slug, environment))


def version_stores(stores: Stores, slug: str, version: int, environment: str) -> Stores:
    """What a sandbox run of the version reads and writes: its document as the config, its sandbox's
    tables as the tables."""
    sandbox = environment_stores(stores, slug, environment)
    document = read_document(stores.pipelines, slug, version)
    return Stores(VersionPipelines(stores.pipelines, slug, document), stores.lake, sandbox.warehouse)


def version_pipeline(stores: Stores, slug: str, version: int) -> Pipeline:
    """The version's config, parsed and validated."""
    return load_pipeline(read_document(stores.pipelines, slug, version))


def run_sandbox(
    stores: Stores,
    slug: str,
    version: int,
    environment: str,
    *,
    log: logging.Logger | None = None,
    commit_info: Mapping[str, str] | None = None,
) -> RunReport:
    """Run the version (in QA or UAT) over every raw file into ``environment``'s sandbox, from scratch."""
    history, _ = read_history(stores.pipelines, slug)
    record = sandbox_record(history, version)
    view = version_stores(stores, slug, version, environment)
    info = {
        **(commit_info or {}),
        delta.META_CONFIG_ETAG: record.etag,
        META_CONFIG_VERSION: str(version),
        META_ENVIRONMENT: environment,
    }
    return run_pipeline(view, slug, clean_run=True, log=log, commit_info=info)
