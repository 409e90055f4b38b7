"""A pipeline's dashboard files: ``pipelines/<slug>/dashboards/<id>.json`` (v1) or ``.yaml`` / ``.yml`` (v2).

Ids are the stems of the top-level files (nested folders such as drafts are not dashboards); when two
files share a stem, ``.json`` wins, then ``.yaml``, then ``.yml``, for listing and reading alike.
Listings are sorted by the dashboard's own ``name``, falling back to its id; the first of that order is
the pipeline's "first dashboard", the one its preview shows.
"""

import json

import yaml

from karet_defs.dashboards.legacy import parse_v1
from karet_defs.dashboards.models import Dashboard, parse_v2, read_document
from karet_defs.errors import DashboardNotFound, ObjectNotFound
from karet_defs.store import keys
from karet_defs.store.base import Stores

JSON_TYPE = "application/json"
YAML_TYPE = "application/yaml"
_MEDIA_TYPES = {".json": JSON_TYPE, ".yaml": YAML_TYPE, ".yml": YAML_TYPE}


def list_dashboards(stores: Stores, slug: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Dashboard ids in key order, and ``(id, name)`` pairs sorted by name."""
    prefix = keys.dashboards_prefix(slug)
    found: dict[str, str] = {}
    for info in stores.pipelines.list(prefix):
        file_name = info.key[len(prefix) :]
        stem, dot, suffix = file_name.rpartition(".")
        if "/" in file_name or not stem or f"{dot}{suffix}" not in _MEDIA_TYPES:
            continue
        found.setdefault(stem, info.key)  # `x.json` sorts before `x.yaml`, as reading tries them
    listings = [
        (dashboard_id, _dashboard_name(stores, key) or dashboard_id) for dashboard_id, key in found.items()
    ]
    listings.sort(key=lambda pair: (pair[1].casefold(), pair[1], pair[0]))
    return list(found), listings


def _dashboard_name(stores: Stores, key: str) -> str | None:
    try:
        body = stores.pipelines.get(key)
    except ObjectNotFound:
        return None  # deleted since the listing
    try:
        document = json.loads(body) if key.endswith(".json") else yaml.safe_load(body)
    except (ValueError, yaml.YAMLError, RecursionError):
        return None
    name = document.get("name") if isinstance(document, dict) else None
    return name.strip() or None if isinstance(name, str) else None


def read_dashboard(stores: Stores, slug: str, name: str) -> tuple[bytes, str]:
    """A dashboard's stored bytes and media type: ``<name>.json``, else ``.yaml``, else ``.yml``."""
    if not name or "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise DashboardNotFound(f"no dashboard named {name!r}", extra={"name": name})
    prefix = keys.dashboards_prefix(slug)
    for suffix, media_type in _MEDIA_TYPES.items():
        try:
            return stores.pipelines.get(f"{prefix}{name}{suffix}"), media_type
        except ObjectNotFound:
            continue
    raise DashboardNotFound(f"no dashboard named {name!r}", extra={"name": name})


def load_dashboard(stores: Stores, slug: str, name: str) -> Dashboard:
    """The dashboard ``name`` in its normalized shape; ``dashboard_not_found`` or ``invalid_dashboard``."""
    body, media_type = read_dashboard(stores, slug, name)
    document = read_document(body, yaml_text=media_type == YAML_TYPE)
    if media_type == JSON_TYPE and document.get("version") != 2:
        return parse_v1(document, name)
    return parse_v2(document, name)


def first_dashboard_id(stores: Stores, slug: str) -> str | None:
    """The id heading the pipeline's dashboard listing, or None when it has none."""
    _, listings = list_dashboards(stores, slug)
    return listings[0][0] if listings else None
