"""Pipeline templates (SPEC §7): the files each one writes under ``pipelines/<slug>/``."""

from importlib import resources

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


def bucket_for(relative_path: str, stores: Stores) -> ObjectStore:
    """Bucket routing by extension (REFERENCE §4.1): CSV → lake, Parquet → warehouse, the rest → pipelines."""
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


def install_template(stores: Stores, slug: str, template_id: str) -> list[str]:
    """Write a template's files under ``pipelines/<slug>/``; return the keys written."""
    written = []
    for relative, content in template_files(template_id).items():
        key = f"pipelines/{slug}/{relative}"
        bucket_for(relative, stores).put(key, content, content_type=content_type_for(relative))
        written.append(key)
    return written
