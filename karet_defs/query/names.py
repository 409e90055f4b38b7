"""The names a table is queried by: Karet's ``nameToSlug`` of its display name, and a pipeline's namespace.

``name_to_slug`` is Karet's rule (REFERENCE §9): lower-case, every run of characters outside ``[a-z0-9]``
becomes one ``_``, leading and trailing ``_`` go, an empty result is ``_x``. Saved queries take their ids
from it too. A namespace (KalamDB's word) is a pipeline's slug with ``-`` as ``_``, so it is a plain SQL
identifier; the mapping back is ambiguous only for slugs that differ by ``-`` versus ``_``, and slugs
never hold ``_``.
"""

import re

_OUTSIDE = re.compile(r"[^a-z0-9]+")
# Schemas every DuckDB database has: a query naming them reads the catalog, not a pipeline.
SYSTEM_SCHEMAS = frozenset({"main", "temp", "system", "pg_catalog", "information_schema"})


def name_to_slug(name: str) -> str:
    """Karet's ``nameToSlug``: ``"Transactions 2026!"`` → ``transactions_2026``."""
    return _OUTSIDE.sub("_", name.lower()).strip("_") or "_x"


def namespace_of(slug: str) -> str:
    """The SQL schema a pipeline's tables are qualified with: ``spending-2026`` → ``spending_2026``."""
    return slug.replace("-", "_")


def slug_of_namespace(namespace: str) -> str:
    return namespace.replace("_", "-")
