"""What of a config shapes the Dagster graph; only a change of it needs a code location reload."""

from karet_defs.config.models import Pipeline
from karet_defs.config.validate import load_pipeline
from karet_defs.config.walk import lookup_ids
from karet_defs.errors import KaretError

Structure = tuple[object, ...]


def structure_of(pipeline: Pipeline | None) -> Structure:
    """Tables, sources, lookups and which of them each mapping wires together (not expressions)."""
    if pipeline is None:
        return ()
    return (
        tuple(
            (t.id, t.name, tuple((c.name, c.type, c.assertions is not None) for c in t.schema_))
            for t in pipeline.analytic_tables
        ),
        tuple((s.id, s.path_prefix, s.format) for s in pipeline.source_containers),
        tuple(lookup.id for lookup in pipeline.lookup_mappings),
        tuple((m.source_container_id, m.analytic_table_id, tuple(lookup_ids(m))) for m in pipeline.mappings),
    )


def structure_of_document(raw: bytes | None) -> Structure:
    """The structure a stored ``pipeline.json`` gives the Dagster graph; a broken one is a structure too."""
    if raw is None:
        return ("absent",)
    try:
        return structure_of(load_pipeline(raw))
    except KaretError as exc:
        return ("broken", exc.code)
