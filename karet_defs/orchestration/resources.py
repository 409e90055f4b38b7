"""The store as a Dagster resource: it only chooses and builds the domain's ``Stores``."""

from typing import Any

import dagster as dg
from pydantic import Field

from karet_defs.settings import Settings
from karet_defs.store.base import Stores
from karet_defs.store.factory import build_stores


# Dagster documents ConfigurableResource unsubscripted (its value type parameter is for
# ConfigurableResourceFactory), and subscripting it would build a pydantic generic subclass at run time.
class StoreResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where pipelines live; unset fields fall back to the environment (``KARET_DATA_DIR``, ``S3_*``)."""

    data_dir: str | None = Field(default=None, description="Local store root (embedded default).")
    s3_bucket: str | None = Field(default=None, description="Bucket holding everything; empty = local store.")
    s3_endpoint: str | None = Field(default=None, description="S3 endpoint URL (moto, MinIO, RustFS, ...).")

    def settings(self) -> Settings:
        # Any: the strings are validated and coerced (``data_dir`` to a Path) by Settings itself.
        overrides: dict[str, Any] = {
            name: value
            for name, value in (
                ("data_dir", self.data_dir),
                ("s3_bucket", self.s3_bucket),
                ("s3_endpoint", self.s3_endpoint),
            )
            if value is not None
        }
        return Settings(**overrides)

    def stores(self) -> Stores:
        return build_stores(self.settings())
