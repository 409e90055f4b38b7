"""Pipeline templates (SPEC §7): the files each one writes under ``pipelines/<slug>/``.

``install_template`` writes ``pipeline.json`` first and, with ``exclusive=True``, only if it does not exist
yet (a conditional put): the store then decides which of several concurrent creates of one slug wins, and
the losers get ``Conflict`` before they have written anything.
"""

from importlib import resources

from karet_defs.errors import Conflict, PreconditionFailed
from karet_defs.store import keys
from karet_defs.store.base import ObjectStore, Stores

TEMPLATE_IDS = ("blank", "spending")


def template_files(template_id: str) -> dict[str, bytes]:
    """Relative path → content of every file of a template, in path order."""
    if template_id not in TEMPLATE_IDS:
        raise KeyError(template_id)
    root = resources.files(__package__) / template_id
    files: dict[str, bytes] = {}

    def walk(node: resources.abc.Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            else:
                files[f"{prefix}{child.name}"] = child.read_bytes()

    walk(root, "")
    return files


def store_for_path(relative_path: str, stores: Stores) -> ObjectStore:
    """Bucket routing by extension (REFERENCE §4.1): CSV → lake, Parquet → warehouse, the rest → pipelines;
    except a table's folder (production or sandbox), whole in the warehouse: its Delta log (JSON) lives
    beside its data."""
    if relative_path.startswith((keys.TABLES_FOLDER, keys.ENVIRONMENTS_FOLDER)):
        return stores.warehouse
    if relative_path.endswith(".csv"):
        return stores.lake
    if relative_path.endswith(".parquet"):
        return stores.warehouse
    return stores.pipelines


def content_type_for(relative_path: str) -> str:
    suffix = relative_path.rsplit(".", 1)[-1].lower()
    return {
        "json": "application/json",
        "csv": "text/csv",
        "png": "image/png",
        "yaml": "application/yaml",
    }.get(suffix, "application/octet-stream")


def install_template(stores: Stores, slug: str, template_id: str, *, exclusive: bool = False) -> list[str]:
    """Write a template's files under ``pipelines/<slug>/``, config first; return the keys written.

    With ``exclusive`` an existing ``pipeline.json`` raises ``Conflict`` (``already_exists``) and nothing
    is written.
    """
    files = template_files(template_id)
    config_key = keys.config_key(slug)
    try:
        stores.pipelines.put(
            config_key,
            files.pop(keys.CONFIG_NAME),
            content_type=content_type_for(keys.CONFIG_NAME),
            if_none_match=exclusive,
        )
    except PreconditionFailed as exc:
        raise Conflict(f"pipeline `{slug}` already exists", extra={"pipeline": slug}) from exc
    written = [config_key]
    for relative, content in files.items():
        key = f"{keys.pipeline_prefix(slug)}{relative}"
        store_for_path(relative, stores).put(key, content, content_type=content_type_for(relative))
        written.append(key)
    return written
