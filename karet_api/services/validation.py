"""Config validation as both the worker's ``/config/validate`` and ``/api/p/<slug>/validate`` answer it."""

from karet_defs.config.validate import load_pipeline
from karet_defs.errors import KaretError


def validate_config(raw: bytes) -> None:
    """Parse and validate a candidate ``pipeline.json``; raise with every error in ``details``.

    A failure that is not a list of rule violations (bad JSON, not a config) still gets one ``details``
    entry at ``/``, so clients always read the same ``{kind, message, path}`` list.
    """
    try:
        load_pipeline(raw)
    except KaretError as exc:
        if exc.details is None:
            exc.details = [{"kind": exc.code, "message": exc.message, "path": "/"}]
        raise
