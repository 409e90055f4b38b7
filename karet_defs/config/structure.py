"""What of a config shapes the Dagster graph; only a change of it needs a code location reload."""

from karet_defs.config.models import FileRows, Pipeline
from karet_defs.config.validate import load_pipeline
from karet_defs.config.walk import dimension_ids, lookup_ids, mapping_roots
from karet_defs.errors import KaretError

Structure = tuple[object, ...]


def structure_of(pipeline: Pipeline | None) -> Structure:
    """Tables, sources, lookups, dimensions (and the prefixes of file-backed ones), rollups and which of them
    each mapping wires together (not expressions)."""
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
        *_e4_structure(pipeline),
    )


def _e4_structure(pipeline: Pipeline) -> Structure:
    # Empty for a config without dimensions or rollups, so E2 structures compare as before.
    if not pipeline.dimensions and not pipeline.rollups:
        return ()
    return (
        tuple(
            (d.id, d.rows.path_prefix if isinstance(d.rows, FileRows) else None) for d in pipeline.dimensions
        ),
        tuple(tuple(dimension_ids(*mapping_roots(m))) for m in pipeline.mappings),
        tuple((r.source_table_id, r.analytic_table_id) for r in pipeline.rollups),
    )


def structure_of_document(raw: bytes | None) -> Structure:
    """The structure a stored ``pipeline.json`` gives the Dagster graph; a broken one is a structure too."""
    if raw is None:
        return ("absent",)
    try:
        return structure_of(load_pipeline(raw))
    except KaretError as exc:
        return ("broken", exc.code)
