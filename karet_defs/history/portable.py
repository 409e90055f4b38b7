"""Portable config versions: one version as a JSON document another instance can import (DRLS shape).

``{"format_version": 1, "name", "description", "version", "pipeline": {…}, "exported_at"}``. An import
creates the pipeline when the name is free, else adds a development version to it; a ``format_version``
newer than this server's is refused rather than half understood.
"""

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from karet_defs.config.validate import load_pipeline
from karet_defs.errors import PreconditionFailed, Unprocessable, UnsupportedFormatVersion
from karet_defs.history.records import VersionRecord, now_iso
from karet_defs.history.versions import (
    JSON_TYPE,
    read_document,
    read_history,
    record_development,
    record_live,
)
from karet_defs.slugs import relocate_path_prefixes, sanitise_slug
from karet_defs.store import keys
from karet_defs.store.base import Stores

FORMAT_VERSION = 1


def export_version(stores: Stores, slug: str, version: int) -> dict[str, Any]:
    """Version ``version`` of the pipeline as a portable document."""
    history, _ = read_history(stores.pipelines, slug)
    record = history.get(version)
    return {
        "format_version": FORMAT_VERSION,
        "name": slug,
        "description": record.note or "",
        "version": version,
        "pipeline": json.loads(read_document(stores.pipelines, slug, version)),
        "exported_at": now_iso(),
    }


@dataclass(frozen=True)
class Imported:
    pipeline: str
    version: VersionRecord
    created: bool


def import_version(stores: Stores, document: Mapping[str, Any], *, name: str | None, author: str) -> Imported:
    """Create the pipeline ``name`` (default: the document's) from a portable version, or add it as a
    development version when the pipeline exists."""
    format_version = document.get("format_version")
    if not isinstance(format_version, int) or isinstance(format_version, bool) or format_version < 1:
        raise Unprocessable("format_version must be a positive integer", code="invalid_format_version")
    if format_version > FORMAT_VERSION:
        raise UnsupportedFormatVersion(
            f"format_version {format_version} is newer than this server's ({FORMAT_VERSION})",
            extra={"supported": FORMAT_VERSION},
        )
    pipeline = document.get("pipeline")
    if not isinstance(pipeline, dict):
        raise Unprocessable("pipeline must be a pipeline config object", code="invalid_pipeline")
    origin = document.get("name")
    fallback = f"imported-{time.time_ns() // 1_000_000}"
    slug = sanitise_slug(name or (origin if isinstance(origin, str) else ""), default=fallback)
    body = (json.dumps(pipeline, indent=2, ensure_ascii=False) + "\n").encode()
    if isinstance(origin, str) and origin and origin != slug:
        body = relocate_path_prefixes(body, origin, slug)
    load_pipeline(body)
    description = document.get("description")
    note = description.strip() or None if isinstance(description, str) else None
    try:
        stores.pipelines.put(keys.config_key(slug), body, content_type=JSON_TYPE, if_none_match=True)
    except PreconditionFailed:
        record = record_development(stores, slug, body, author=author, note=note, source="import")
        return Imported(slug, record, created=False)
    record = record_live(stores, slug, author=author, note=note, source="import")
    return Imported(slug, record, created=True)
