"""The one assembly point: every pipeline in the store becomes Dagster definitions when the location loads.

A pipeline whose config cannot be read or validated is replaced by a visible marker asset and a logged
warning; it never takes the other pipelines or the code location down.
"""

import logging

import dagster as dg

from karet_defs.catalog import list_slugs, read_pipeline
from karet_defs.errors import KaretError
from karet_defs.orchestration.jobs import dagster_name
from karet_defs.orchestration.pipeline import build_broken_pipeline_defs, build_pipeline_defs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.store import keys

_log = logging.getLogger("karet.definitions")
# Dagster builds the definitions more than once per code-server process (one process per reload): each
# broken pipeline is reported once per process, i.e. once per reload, instead of once per build.
_reported: set[tuple[str, str, str]] = set()


def build_definitions(store: StoreResource) -> dg.Definitions:
    """Definitions for every pipeline found through ``store``."""
    stores = store.stores()
    parts: list[dg.Definitions] = []
    names: dict[str, str] = {}
    for slug in list_slugs(stores):
        name = dagster_name(slug)
        try:
            if name in names:
                raise KaretError(
                    f"slug `{slug}` maps to the Dagster name `{name}` already used by `{names[name]}`",
                    code="name_collision",
                )
            parts.append(build_pipeline_defs(read_pipeline(stores, slug), slug, store))
        except KaretError as exc:
            _report_skipped(slug, exc)
            parts.append(build_broken_pipeline_defs(slug, exc, store))
        names.setdefault(name, slug)
    return dg.Definitions.merge(*parts, dg.Definitions(resources={"store": store}))


def _report_skipped(slug: str, exc: KaretError) -> None:
    if (slug, exc.code, exc.message) in _reported:
        return
    _reported.add((slug, exc.code, exc.message))
    _log.warning(
        "karet: pipeline %s not loaded (%s: %s); fix %s, its other pipelines are unaffected",
        slug,
        exc.code,
        exc.message,
        keys.config_key(slug),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(StoreResource())
