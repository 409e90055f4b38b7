"""The key layout of SPEC §1, in one place."""

PIPELINES_PREFIX = "pipelines/"
CONFIG_NAME = "pipeline.json"
TABLES_FOLDER = "clean/"  # under a pipeline's prefix: one Delta table per analytic table
# Sandbox runs of a config version: ``env/<environment>/clean/<table>/``, beside the production tables.
ENVIRONMENTS_FOLDER = "env/"
DRAFTS_FOLDER = "drafts/"  # the editor's unvalidated config, beside the live one
QUERIES_FOLDER = "queries/"  # saved SQL queries, one ``<id>.json`` each
VERSIONS_FOLDER = "versions/"  # config history: ``<n>.json`` per version beside ``index.json``
HISTORY_NAME = "index.json"
DASHBOARDS_FOLDER = "dashboards/"  # ``<id>.json`` (v1) or ``<id>.yaml`` / ``.yml`` (v2)
PREVIEW_NAME = "preview.png"
# Present while the user wants an uploaded preview kept over the ones runs render.
PREVIEW_KEEP_NAME = "preview.keep"
ACCESS_NAME = "access.json"  # owner and members (accounts); absent: every user may see it


def pipeline_prefix(slug: str) -> str:
    return f"{PIPELINES_PREFIX}{slug}/"


def config_key(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{CONFIG_NAME}"


def draft_config_key(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{DRAFTS_FOLDER}{CONFIG_NAME}"


def queries_prefix(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{QUERIES_FOLDER}"


def dashboards_prefix(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{DASHBOARDS_FOLDER}"


def access_key(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{ACCESS_NAME}"


def preview_key(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{PREVIEW_NAME}"


def preview_keep_key(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{PREVIEW_KEEP_NAME}"


def versions_prefix(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{VERSIONS_FOLDER}"


def version_key(slug: str, version: int) -> str:
    return f"{versions_prefix(slug)}{version}.json"


def history_key(slug: str) -> str:
    return f"{versions_prefix(slug)}{HISTORY_NAME}"


def tables_prefix(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{TABLES_FOLDER}"


def table_prefix(slug: str, table_id: str) -> str:
    return f"{tables_prefix(slug)}{table_id}/"


def sandbox_tables_prefix(slug: str, environment: str) -> str:
    """Where a sandbox run in ``environment`` writes what ``tables_prefix`` holds in production."""
    return f"{pipeline_prefix(slug)}{ENVIRONMENTS_FOLDER}{environment}/{TABLES_FOLDER}"


def slug_of_config_key(key: str) -> str | None:
    """``pipelines/<slug>/pipeline.json`` → slug; any other key → None."""
    if not key.startswith(PIPELINES_PREFIX) or not key.endswith("/" + CONFIG_NAME):
        return None
    slug = key[len(PIPELINES_PREFIX) : -len(CONFIG_NAME) - 1]
    return slug if slug and "/" not in slug else None
