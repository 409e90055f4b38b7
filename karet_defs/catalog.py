"""Finding pipelines in the store and reading their configs, with the run-time error codes of SPEC §4."""

from collections.abc import Iterator

from karet_defs.config.models import Pipeline
from karet_defs.config.validate import load_pipeline
from karet_defs.errors import (
    ConfigInvalid,
    ConfigParseFailed,
    ConfigReadFailed,
    ConfigSchemaError,
    InvalidPrefix,
    ObjectNotFound,
    PipelineConfigNotFound,
    StoreError,
    ValidationFailed,
)
from karet_defs.store import keys
from karet_defs.store.base import Stores

_MAX_PREFIX_BYTES = 512
_SEGMENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def list_slugs(stores: Stores) -> Iterator[str]:
    """Every slug with a ``pipelines/<slug>/pipeline.json``, in key order."""
    for info in stores.pipelines.list(keys.PIPELINES_PREFIX):
        slug = keys.slug_of_config_key(info.key)
        if slug is not None:
            yield slug


def read_pipeline(stores: Stores, slug: str) -> Pipeline:
    """The parsed, upgraded and validated config of one pipeline, or the run-time error that stops a run."""
    key = keys.config_key(slug)
    try:
        raw = stores.pipelines.get(key)
    except ObjectNotFound as exc:
        raise PipelineConfigNotFound(f"no pipeline config at {key}") from exc
    except StoreError as exc:
        raise ConfigReadFailed(f"S3 GetObject failed for {key}: {exc.message}") from exc
    try:
        return load_pipeline(raw)
    except ConfigSchemaError as exc:
        raise ConfigParseFailed(exc.message, details=exc.details) from exc
    except ValidationFailed as exc:
        messages = [d["message"] for d in exc.details or []]
        raise ConfigInvalid("; ".join(messages) or exc.message, details=exc.details) from exc


def slug_from_pipeline_prefix(prefix: str) -> str:
    """Check a worker ``pipeline_prefix`` (REFERENCE §3.1) and return the slug it names."""
    if not prefix:
        raise InvalidPrefix("pipeline_prefix must not be empty")
    size = len(prefix.encode("utf-8"))
    if size > _MAX_PREFIX_BYTES:
        raise InvalidPrefix(f"pipeline_prefix is too long ({size} bytes, max {_MAX_PREFIX_BYTES})")
    if prefix.startswith("/"):
        raise InvalidPrefix("pipeline_prefix must not start with '/'")
    if not prefix.endswith("/"):
        raise InvalidPrefix("pipeline_prefix must end with '/'")
    segments = prefix[:-1].split("/")
    if any(not s for s in segments):
        raise InvalidPrefix("pipeline_prefix must not contain empty path segments")
    if any(s in (".", "..") for s in segments):
        raise InvalidPrefix("pipeline_prefix must not contain '.' or '..' segments")
    for segment in segments:
        if not set(segment) <= _SEGMENT_CHARS:
            raise InvalidPrefix(
                f"pipeline_prefix segment '{segment}' contains characters outside [A-Za-z0-9._-]"
            )
    if len(segments) != 2 or segments[0] != keys.PIPELINES_PREFIX.rstrip("/"):
        raise InvalidPrefix("pipeline_prefix must have the form pipelines/<slug>/")
    return segments[1]
