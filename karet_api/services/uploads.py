"""Raw file uploads into a pipeline's source folder: path and type checks, a capped streamed body.

The path is relative to the pipeline folder (``pipelines/<slug>/<path>``) and must land under one of the
pipeline's source prefixes, with safe segments only: checked on the path as routed *and* once more
percent-decoded, so ``%2e%2e`` or ``%2F`` smuggled through a proxy cannot climb out. The extension must be
one the engine reads for that source (CSV, or JSON/NDJSON for NDJSON sources); anything else is refused
with 422 ``unsupported_file_type``, not 415, because the file name is what is wrong, not the request's
``Content-Type``. The body is streamed to a temporary file and refused with 413 past 100 MB (Karet's lake
upload cap), stored with one atomic put, and handed to the webhook's debounce (trigger ``webhook``, one of
SPEC's trigger values), so an upload followed by the bucket's own notification of it starts one run.
Its content is checked first: text that decodes as UTF-8 and, for CSV, a header holding the source's
schema columns; otherwise 422 ``invalid_file_content`` says what is wrong and nothing is stored.
"""

import codecs
from pathlib import Path
from urllib.parse import unquote

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from karet_api.bodies import read_capped
from karet_api.schemas.events import FileUploaded
from karet_api.services.autoruns import AutoRuns
from karet_defs.catalog import read_pipeline
from karet_defs.config.models import Pipeline, SourceContainer
from karet_defs.engine.read import SOURCE_EXTENSIONS, FileReadError, csv_header
from karet_defs.errors import KaretError, PayloadTooLarge, StoreError, Unprocessable
from karet_defs.scratch import scratch_dir
from karet_defs.store import keys
from karet_defs.store.base import ObjectInfo, Stores
from karet_defs.store.changes import is_karet_output

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
MAX_PATH_BYTES = 1024
_SNIFF_BYTES = 64 * 1024  # enough to tell text from binary and to hold a CSV header
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
}


def upload_target(pipeline: Pipeline, slug: str, path: str) -> tuple[str, SourceContainer]:
    """The lake key for ``path`` (relative to the pipeline folder) and the source that will read it, after
    every safety and type check."""
    _check_safe(path)
    suffix = Path(path).suffix.lower()
    if suffix not in CONTENT_TYPES:
        raise Unprocessable(
            f"unsupported file type {suffix or '(none)'!r}: upload .csv, .json, .ndjson or .jsonl files",
            code="unsupported_file_type",
        )
    key = keys.pipeline_prefix(slug) + path
    sources = [s for s in pipeline.source_containers if key.startswith(s.resolved_prefix(slug))]
    if not sources or is_karet_output(key):
        folders = ", ".join(repr(s.resolved_prefix(slug)) for s in pipeline.source_containers) or "none"
        raise Unprocessable(
            f"{key!r} is not under a source folder of pipeline `{slug}` (source folders: {folders})",
            code="invalid_path",
        )
    readers = [s for s in sources if suffix in SOURCE_EXTENSIONS[s.format]]
    if not readers:
        formats = ", ".join(sorted({s.format for s in sources}))
        raise Unprocessable(
            f"the source reading {key!r} expects {formats} files, not {suffix!r}",
            code="unsupported_file_type",
        )
    return key, readers[0]


def check_content(spool: Path, source: SourceContainer) -> None:
    """Refuse at the door what no run could read: text that is not UTF-8 (or holds NUL bytes: binary
    content under a text name), or a CSV whose header lacks a column of the source's schema."""
    with open(spool, "rb") as body:
        head = body.read(_SNIFF_BYTES)
    if not head.strip():
        raise Unprocessable("the file is empty", code="invalid_file_content")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise Unprocessable(
            f"the file is not UTF-8 text (byte {exc.start}): re-export it as UTF-8 CSV or JSON",
            code="invalid_file_content",
        ) from exc
    if b"\x00" in head:
        raise Unprocessable(
            "the file holds NUL bytes: it is binary content, not text", code="invalid_file_content"
        )
    if source.format == "csv":
        try:
            csv_header(spool, source.schema_)
        except FileReadError as exc:
            raise Unprocessable(
                f"the file cannot be read as source `{source.id}`: {exc}", code="invalid_file_content"
            ) from exc


def _check_safe(path: str) -> None:
    if not path or len(path.encode()) > MAX_PATH_BYTES:
        raise _invalid_path(path, f"it must have 1 to {MAX_PATH_BYTES} bytes")
    for form in (path, unquote(path)):
        if form.startswith("/") or "\\" in form or any(ord(c) < 0x20 or c == "\x7f" for c in form):
            raise _invalid_path(path, "absolute paths, backslashes and control characters are not allowed")
        if any(segment in ("", ".", "..") for segment in form.split("/")):
            raise _invalid_path(path, "empty, '.' and '..' segments are not allowed")


def _invalid_path(path: str, reason: str) -> Unprocessable:
    return Unprocessable(f"invalid path {path[:200]!r}: {reason}", code="invalid_path")


async def receive_upload(
    request: Request, stores: Stores, runs: AutoRuns, slug: str, path: str
) -> FileUploaded:
    """Check the target, stream the body (capped), store it and schedule the pipeline's debounced run."""
    pipeline = await run_in_threadpool(read_pipeline, stores, slug)
    key, source = upload_target(pipeline, slug, path)
    with scratch_dir("upload") as tmp:
        spool = Path(tmp) / "body"
        with open(spool, "wb") as out:
            await read_capped(request, MAX_UPLOAD_BYTES, out, too_large=_too_large)
        await run_in_threadpool(check_content, spool, source)
        info = await run_in_threadpool(_store, stores, key, spool)
    # A pipeline without tables has no job to run; the file is stored all the same.
    scheduled = bool(pipeline.analytic_tables) and await run_in_threadpool(runs.submit, slug, [info])
    return FileUploaded(key=info.key, etag=info.etag, scheduled=scheduled)


def _store(stores: Stores, key: str, spool: Path) -> ObjectInfo:
    stores.lake.put_file(key, spool, content_type=CONTENT_TYPES[Path(key).suffix.lower()])
    info = stores.lake.head(key)
    if info is None:
        raise StoreError(f"{key!r} vanished right after it was stored")
    return info


def _too_large(limit: int, declared: str | None) -> KaretError:
    return PayloadTooLarge(f"file over the upload limit of {limit // (1024 * 1024)} MB")
