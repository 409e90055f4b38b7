"""Pipeline slugs: the one sanitiser every route uses, and moving a config's prefixes to a new slug.

``sanitise_slug`` is Karet's rule (REFERENCE §4.2): trim, lower-case, every character outside ``[a-z0-9-]``
becomes ``-``, leading and trailing dash runs go, inner runs stay (``"My  Pipe!"`` → ``my--pipe``). An empty
result is refused, and so is one longer than ``MAX_SLUG_LENGTH`` (a DNS label, which also keeps the slug a
usable S3 key segment and Dagster name). ``relocate_path_prefixes`` rewrites the absolute source prefixes
that point into ``pipelines/<old>/`` when a pipeline is renamed or imported under another slug.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

from karet_defs.errors import InvalidSlug
from karet_defs.store import keys

MAX_SLUG_LENGTH = 63
_OUTSIDE_SLUG_CHARS = re.compile(r"[^a-z0-9-]")
_PATH_PREFIX = "path_prefix"


def sanitise_slug(raw: str, *, default: str | None = None) -> str:
    """Karet's slug of ``raw``; an empty result is ``default`` when one is given, else ``InvalidSlug``."""
    slug = _OUTSIDE_SLUG_CHARS.sub("-", raw.strip().lower()).strip("-")
    if not slug:
        if default is not None:
            return default
        raise InvalidSlug(f"invalid slug {raw!r}: it needs at least one letter or digit")
    if len(slug) > MAX_SLUG_LENGTH:
        raise InvalidSlug(f"invalid slug: {len(slug)} characters, the limit is {MAX_SLUG_LENGTH}")
    return slug


def pipeline_folders(config: bytes) -> dict[str, list[str]]:
    """Slug → the rest of each absolute ``pipelines/<slug>/<rest>`` prefix in the config, first seen first."""
    folders: dict[str, list[str]] = {}
    for node in _nodes_with_prefix(_load(config)):
        prefix: str = node[_PATH_PREFIX]
        if prefix.startswith(keys.PIPELINES_PREFIX):
            slug, sep, rest = prefix[len(keys.PIPELINES_PREFIX) :].partition("/")
            if slug and sep:
                folders.setdefault(slug, []).append(rest)
    return folders


def relocate_path_prefixes(config: bytes, old: str, new: str) -> bytes:
    """``config`` with every ``path_prefix`` under ``pipelines/<old>/`` moved to ``pipelines/<new>/``.

    The bytes come back untouched when nothing moves (or the document is not JSON), so a config that never
    pointed into its own folder keeps its exact formatting.
    """
    document = _load(config)
    old_prefix, new_prefix = keys.pipeline_prefix(old), keys.pipeline_prefix(new)
    moved = False
    for node in _nodes_with_prefix(document):
        if node[_PATH_PREFIX].startswith(old_prefix):
            node[_PATH_PREFIX] = new_prefix + node[_PATH_PREFIX][len(old_prefix) :]
            moved = True
    if not moved:
        return config
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def _load(config: bytes) -> Any:
    try:
        return json.loads(config)
    except ValueError:
        return None


def _nodes_with_prefix(document: Any) -> Iterator[dict[str, Any]]:
    # Every object with a string ``path_prefix``, wherever it sits: sources today, nested ones tomorrow.
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get(_PATH_PREFIX), str):
                yield node
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
