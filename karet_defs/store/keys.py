"""The key layout of SPEC §1, in one place."""

PIPELINES_PREFIX = "pipelines/"
CONFIG_NAME = "pipeline.json"
TABLES_FOLDER = "clean/"  # under a pipeline's prefix: one Delta table per analytic table
DRAFTS_FOLDER = "drafts/"  # the editor's unvalidated config, beside the live one
QUERIES_FOLDER = "queries/"  # saved SQL queries, one ``<id>.json`` each


def pipeline_prefix(slug: str) -> str:
    return f"{PIPELINES_PREFIX}{slug}/"


def config_key(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{CONFIG_NAME}"


def draft_config_key(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{DRAFTS_FOLDER}{CONFIG_NAME}"


def queries_prefix(slug: str) -> str:
    return f"{pipeline_prefix(slug)}{QUERIES_FOLDER}"


def table_prefix(slug: str, table_id: str) -> str:
    return f"{pipeline_prefix(slug)}{TABLES_FOLDER}{table_id}/"


def slug_of_config_key(key: str) -> str | None:
    """``pipelines/<slug>/pipeline.json`` → slug; any other key → None."""
    if not key.startswith(PIPELINES_PREFIX) or not key.endswith("/" + CONFIG_NAME):
        return None
    slug = key[len(PIPELINES_PREFIX) : -len(CONFIG_NAME) - 1]
    return slug if slug and "/" not in slug else None
