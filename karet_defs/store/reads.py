"""Reading objects: with the ETag that belongs to exactly those bytes (for compare-and-swap), or as a small
JSON record that a damaged write must not turn into an exception."""

import hashlib
import json
from typing import Any

from karet_defs.errors import ObjectNotFound
from karet_defs.store.base import ObjectStore

_ATTEMPTS = 3


def md5_hex(body: bytes) -> str:
    """The MD5 of ``body``: the ETag a store gives a single-part upload of it."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def read_verified(store: ObjectStore, key: str) -> tuple[bytes, str] | None:
    """The object's bytes and their ETag, or None when it does not exist."""
    for _ in range(_ATTEMPTS):
        try:
            body = store.get(key)
        except ObjectNotFound:
            return None
        info = store.head(key)
        if info is None:
            return None
        # A write between the GET and the HEAD would pair the old body with the new ETag, and a later
        # If-Match would then overwrite a version the caller never saw. ETags that are not the body's MD5
        # (multipart, SSE-KMS) cannot be checked this way and are taken as they are after the retries.
        etag = info.etag
        if etag == md5_hex(body):
            return body, etag
    return body, etag


def read_json_record(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """The JSON object at ``key``, or None when there is none; a damaged or non-object body reads as ``{}``
    so each caller decides what a record with no valid fields means (usually: grants nothing)."""
    try:
        document = json.loads(store.get(key))
    except ObjectNotFound:
        return None
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
