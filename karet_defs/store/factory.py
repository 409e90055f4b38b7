"""``build_stores``: the one place that turns ``Settings`` into the three logical buckets of SPEC §1.

No ``S3_BUCKET`` selects the embedded default, one ``LocalStore`` under ``KARET_DATA_DIR`` serving all three
roles. Otherwise every bucket is an ``S3Store`` sharing a single boto3 client (and its connection pool);
``S3_BUCKET_LAKE`` and ``S3_BUCKET_WAREHOUSE`` default to ``S3_BUCKET``, and a role whose bucket equals
another's gets the very same store.
"""

from karet_defs.settings import Settings
from karet_defs.store.base import ObjectStore, Stores
from karet_defs.store.local import LocalStore


def build_stores(settings: Settings) -> Stores:
    """The pipelines, lake and warehouse stores chosen by ``settings``."""
    if not settings.uses_s3:
        local = LocalStore(settings.data_dir)
        return Stores(pipelines=local, lake=local, warehouse=local)
    # Imported here: boto3 adds ~60 ms to every process start, and the embedded default never needs it.
    from karet_defs.store.s3 import S3Store, delta_storage_options, make_s3_client

    client = make_s3_client(settings)
    delta_options = delta_storage_options(settings)
    by_bucket: dict[str, ObjectStore] = {}

    def store_for(bucket: str) -> ObjectStore:
        return by_bucket.setdefault(bucket, S3Store(bucket, client=client, delta_options=delta_options))

    return Stores(
        pipelines=store_for(settings.s3_bucket),
        lake=store_for(settings.s3_bucket_lake or settings.s3_bucket),
        warehouse=store_for(settings.s3_bucket_warehouse or settings.s3_bucket),
    )
