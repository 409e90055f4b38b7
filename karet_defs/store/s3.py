"""``S3Store``: the ``ObjectStore`` over one S3 (or S3-compatible) bucket, and the boto3 client it uses.

This module is the boundary where botocore failures become Karet errors: every call goes through
``_translate``, which maps a missing bucket to ``BucketNotFound``, a missing key to ``ObjectNotFound``, a
failed ``If-Match`` / ``If-None-Match`` to ``PreconditionFailed`` and anything else (HTTP errors,
refused connections, timeouts) to ``StoreError``, always chained with ``raise ... from exc``. Conditional
puts use S3's own conditional writes, so the compare-and-swap happens on the server.
"""

import builtins
import functools
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from karet_defs.errors import BucketNotFound, KaretError, ObjectNotFound, PreconditionFailed, StoreError
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectInfo, TableLocation, normalise_etag

if TYPE_CHECKING:
    # A dev-only stub package (types-boto3-s3): the client's methods typed per S3 operation.
    from types_boto3_s3 import S3Client

BUCKET_NOT_FOUND_MESSAGE = (
    "S3 bucket does not exist. Create it first or check the S3_BUCKET / S3_BUCKET_LAKE / "
    "S3_BUCKET_WAREHOUSE environment variables."
)
PAGE_SIZE = 1000
DELETE_BATCH = 1000  # the most keys one DeleteObjects request accepts
_CHUNK = 1024 * 1024
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}


def make_s3_client(settings: Settings, *, max_attempts: int = 3) -> "S3Client":
    """A boto3 S3 client for ``settings``: endpoint, addressing style, region, credentials, retries."""
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        s3={"addressing_style": "path" if settings.s3_force_path_style else "auto"},
        max_pool_connections=32,
        # S3-compatible servers (MinIO, RustFS, ...) may reject the CRC trailers botocore adds by default.
        request_checksum_calculation="when_required" if settings.s3_endpoint else "when_supported",
        response_checksum_validation="when_required" if settings.s3_endpoint else "when_supported",
    )
    with _session_lock:
        return _session().client(
            "s3",
            endpoint_url=settings.s3_endpoint or None,
            region_name=settings.aws_region or None,
            # Empty credentials fall through to boto3's own chain (environment, profile, instance role).
            aws_access_key_id=settings.aws_access_key_id or None,
            aws_secret_access_key=settings.aws_secret_access_key or None,
            config=config,
        )


def delta_storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs (object_store) options reaching the same bucket as ``make_s3_client``.

    ``conditional_put: etag`` makes a Delta commit a PUT with ``If-None-Match``: of two writers racing for
    one version, exactly one wins and the other retries on the next, so no commit is lost without a lock
    service.
    """
    # Bounded like the boto3 client, so an unreachable endpoint fails a run instead of stalling it.
    options = {
        "AWS_REGION": settings.aws_region or "us-east-1",
        "conditional_put": "etag",
        "timeout": "60s",
        "connect_timeout": "5s",
        "max_retries": "3",
        "retry_timeout": "30s",
    }
    if settings.s3_endpoint:
        options["AWS_ENDPOINT_URL"] = settings.s3_endpoint
        options["AWS_ALLOW_HTTP"] = str(settings.s3_endpoint.startswith("http://")).lower()
    options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = str(not settings.s3_force_path_style).lower()
    if settings.aws_access_key_id:
        options["AWS_ACCESS_KEY_ID"] = settings.aws_access_key_id
        options["AWS_SECRET_ACCESS_KEY"] = settings.aws_secret_access_key
    return options


# One session for the process, so the S3 service model is loaded once (~0.1 s per session); sessions are
# not thread-safe, hence the lock around client creation. The clients themselves are thread-safe.
_session_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


class S3Store:
    """An ``ObjectStore`` over one bucket, through a (thread-safe, shareable) boto3 client."""

    def __init__(
        self, bucket: str, *, client: "S3Client", delta_options: dict[str, str] | None = None
    ) -> None:
        self.bucket = bucket
        self.client = client
        self.delta_options = delta_options or {}

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r})"

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` in lexicographic key order, fetched page by page."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            params["StartAfter"] = start_after
        return self._list(params)

    def _list(self, params: dict[str, Any]) -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            **params, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=obj["Key"],
                        size=obj["Size"],
                        etag=normalise_etag(obj.get("ETag")),
                        last_modified=obj["LastModified"],
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc) from exc

    def table_location(self, prefix: str) -> TableLocation:
        """The Delta table rooted at ``prefix``, as an ``s3://`` URI with delta-rs storage options."""
        return TableLocation(
            uri=f"s3://{self.bucket}/{prefix.rstrip('/')}",
            storage_options=dict(self.delta_options),
            local_root=None,
        )

    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of one object, or None when it does not exist."""
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) != 404:
                raise _translate(exc, key) from exc
            # A HEAD 404 has no body, so a missing bucket looks like a missing key: ask the bucket.
            self._check_bucket()
            return None
        except BotoCoreError as exc:
            raise _translate(exc, key) from exc
        return ObjectInfo(
            key=key,
            size=resp["ContentLength"],
            etag=normalise_etag(resp.get("ETag")),
            last_modified=resp["LastModified"],
        )

    def get(self, key: str) -> bytes:
        """The whole object body."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            with closing(resp["Body"]) as body:
                return body.read()
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, key) from exc

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` inclusive (HTTP Range semantics)."""
        if start < 0 or end < start:
            raise StoreError(f"Invalid byte range {start}-{end}: need 0 <= start <= end.")
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}")
            with closing(resp["Body"]) as body:
                return body.read()
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, key) from exc

    def download(self, key: str, dest: Path) -> None:
        """Copy an object into a local file (streamed, never the whole body in memory)."""
        dest = Path(dest)
        # One GET streamed to a sibling temp file: a failed transfer never leaves a half-written ``dest``.
        part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            with closing(resp["Body"]) as body, open(part, "wb") as out:
                for chunk in body.iter_chunks(_CHUNK):
                    out.write(chunk)
            os.replace(part, dest)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, key) from exc
        except OSError as exc:
            raise StoreError(f"Cannot download {key!r} to {dest}: {exc}") from exc
        finally:
            part.unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        """None: S3 objects have no local path, callers download them."""
        return None

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write an object atomically (readers see the old or the new body, never a part); return its ETag."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data}
        if content_type:
            params["ContentType"] = content_type
        if if_match is not None:
            params["IfMatch"] = f'"{normalise_etag(if_match)}"'
        if if_none_match:
            params["IfNoneMatch"] = "*"
        try:
            resp = self.client.put_object(**params)
        except ClientError as exc:
            # If-Match on a key that is gone answers 404 NoSuchKey: for the caller the precondition failed.
            if if_match is not None and _code(exc) in _NOT_FOUND_CODES:
                raise PreconditionFailed(f"Object {key!r} no longer exists.") from exc
            if _is_precondition_failure(exc):
                reason = "already exists" if if_match is None else "changed since it was read"
                raise PreconditionFailed(f"Object {key!r} {reason}.") from exc
            raise _translate(exc, key) from exc
        except BotoCoreError as exc:
            raise _translate(exc, key) from exc
        return normalise_etag(resp.get("ETag"))

    def put_file(self, key: str, src: Path, *, content_type: str | None = None) -> str:
        """Upload a local file atomically; return its ETag."""
        # One PutObject (not a multipart upload_file) keeps the ETag the body's MD5, as in the local store.
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ContentType"] = content_type
        try:
            with open(src, "rb") as body:
                resp = self.client.put_object(Body=body, **params)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, key) from exc
        except OSError as exc:
            raise StoreError(f"Cannot upload {src} to {key!r}: {exc}") from exc
        return normalise_etag(resp.get("ETag"))

    def delete(self, key: str) -> None:
        """Remove one object; a missing key is not an error."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, key) from exc

    # ``builtins.list``: inside this class body ``list`` names the method above.
    def delete_many(self, keys: builtins.list[str]) -> int:
        """Remove many objects (batched); return how many were asked for."""
        for i in range(0, len(keys), DELETE_BATCH):
            batch = keys[i : i + DELETE_BATCH]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                raise _translate(exc) from exc
            # DeleteObjects answers 200 even when some keys failed; they are listed under Errors.
            if errors := resp.get("Errors"):
                first = errors[0]
                raise StoreError(
                    f"Could not delete {len(errors)} object(s), e.g. {first.get('Key')!r}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )
        return len(keys)

    def close(self) -> None:
        """Close the client's pooled connections (the store is unusable afterwards)."""
        self.client.close()

    def _check_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and _status(exc) == 404:
                raise BucketNotFound(BUCKET_NOT_FOUND_MESSAGE) from exc
            raise _translate(exc) from exc


def _translate(exc: ClientError | BotoCoreError, key: str | None = None) -> KaretError:
    if isinstance(exc, BotoCoreError):
        return StoreError(str(exc))
    code = _code(exc)
    status = _status(exc)
    if code == "NoSuchBucket":
        return BucketNotFound(BUCKET_NOT_FOUND_MESSAGE)
    if key is not None and (code in _NOT_FOUND_CODES or status == 404):
        return ObjectNotFound(f"Object {key!r} does not exist.")
    if _is_precondition_failure(exc):
        return PreconditionFailed(str(exc))
    return StoreError(str(exc))


def _is_precondition_failure(exc: ClientError) -> bool:
    # 412 for a failed If-Match / If-None-Match; 409 ConditionalRequestConflict for a lost concurrent race.
    return _code(exc) in _PRECONDITION_CODES or _status(exc) == 412


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
