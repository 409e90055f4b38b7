"""Fresh stores and Dagster homes for each measurement, so no cache of an earlier run is ever measured."""

import os
import shutil
from importlib import resources
from pathlib import Path

from bench.spending import SLUG, TABLE
from karet_defs.settings import Settings
from karet_defs.store.base import Stores
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template


def local_stores(root: Path) -> Stores:
    return build_stores(Settings(data_dir=root, s3_bucket=""))


def table_dir(store_root: Path, slug: str = SLUG) -> Path:
    """Where the engine publishes the table (``pipelines/<slug>/clean/transactions``)."""
    return store_root / "pipelines" / slug / "clean" / TABLE


def raw_dir(store_root: Path, slug: str = SLUG) -> Path:
    """Where the template's source reads its CSVs (``pipelines/<slug>/transactions``)."""
    return store_root / "pipelines" / slug / "transactions"


def prepare_store(root: Path, raw_files: list[Path], slug: str = SLUG) -> Stores:
    """A fresh local store holding the Spending Tracker template as ``slug`` over ``raw_files`` only.

    The CSVs are hard-linked, not copied. Listing them once computes their ETags, as an upload would have,
    so the engine is not charged for the local store's hashing of files dropped in behind its back.
    """
    shutil.rmtree(root, ignore_errors=True)
    stores = local_stores(root)
    written = install_template(stores, slug, "spending")
    stores.lake.delete_many([k for k in written if k.endswith(".csv")])  # the template's seed file
    folder = raw_dir(root, slug)
    folder.mkdir(parents=True, exist_ok=True)
    for path in raw_files:
        try:
            os.link(path, folder / path.name)
        except OSError:
            shutil.copyfile(path, folder / path.name)
    for _ in stores.lake.list(f"{folder.relative_to(root).as_posix()}/"):
        pass
    return stores


def tiny_store(root: Path, slug: str) -> Path:
    """A fresh store with the Spending Tracker template and its own few-row seed file."""
    shutil.rmtree(root, ignore_errors=True)
    install_template(local_stores(root), slug, "spending")
    return root


def dagster_home(path: Path) -> Path:
    """A fresh Dagster home with the embedded default instance (``karet_defs/instance/embedded.yaml``)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    embedded = resources.files("karet_defs") / "instance" / "embedded.yaml"
    (path / "dagster.yaml").write_bytes(embedded.read_bytes())
    return path


def warm_page_cache(files: list[Path]) -> None:
    """Read the files once, so every tool reads them from memory and none alone pays for the disk."""
    for path in files:
        with path.open("rb") as f:
            while f.read(1 << 24):
                pass
