"""Load-time upgrade of legacy (E1) ``pipeline.json`` documents to the E2 shape (REFERENCE §1.9 step 1).

The upgrade works on the raw JSON dict, before the model parses it: a mapping's ``partition_by {column C,
granularity "month"}`` becomes ``year``/``month`` output columns computed from C's expression, ``year:int64``
and ``month:int64`` table columns and ``partition_keys: ["year", "month"]`` on the target table. It is
idempotent and never raises: anything it does not recognise, and every ``partition_by`` it cannot upgrade
(C not an output column, another granularity, no target table, C declared with a type other than ``date``), is
left in place so that the parser and the validator report it. Relative ``path_prefix`` values are not
rewritten, because ``SourceContainer.resolved_prefix`` resolves them at use time (SPEC §2.2).
"""

from typing import Any

PARTITION_COLUMNS = ("year", "month")


def upgrade_legacy(doc: dict[str, Any]) -> dict[str, Any]:
    """Return ``doc`` with every upgradable E1 ``partition_by`` turned into E2 partition keys."""
    if not isinstance(doc, dict):
        return doc
    mappings = doc.get("mappings")
    tables = doc.get("analytic_tables")
    if not isinstance(mappings, list) or not any(
        isinstance(m, dict) and "partition_by" in m for m in mappings
    ):
        return doc

    # Copy on write: only the containers that change are copied, so the caller's dict is never mutated and a
    # deeply nested expression is never walked.
    out = dict(doc)
    new_mappings = list(mappings)
    new_tables = list(tables) if isinstance(tables, list) else []
    for i, mapping in enumerate(new_mappings):
        if not isinstance(mapping, dict) or "partition_by" not in mapping:
            continue
        if mapping["partition_by"] is None:
            new_mappings[i] = {k: v for k, v in mapping.items() if k != "partition_by"}
            continue
        t = _table_index(new_tables, mapping.get("analytic_table_id"))
        if t is None:
            continue
        upgraded = _upgrade_mapping(mapping, new_tables[t])
        if upgraded is None:
            continue
        new_mappings[i], new_tables[t] = upgraded
    out["mappings"] = new_mappings
    if isinstance(tables, list):
        out["analytic_tables"] = new_tables
    return out


def _table_index(tables: Any, table_id: Any) -> int | None:
    # The first table with the id wins, as in Pipeline.table(); duplicates are the validator's business.
    if not isinstance(tables, list) or not isinstance(table_id, str) or not table_id:
        return None
    return next(
        (j for j, t in enumerate(tables) if isinstance(t, dict) and t.get("id") == table_id),
        None,
    )


def _upgrade_mapping(
    mapping: dict[str, Any], table: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    partition_by = mapping["partition_by"]
    columns = mapping.get("columns")
    if not isinstance(partition_by, dict) or not isinstance(columns, list) or not isinstance(table, dict):
        return None
    if set(partition_by) - {"column", "granularity"} or partition_by.get("granularity", "month") != "month":
        return None
    column = partition_by.get("column")
    source = next(
        (c for c in columns if isinstance(c, dict) and isinstance(column, str) and c.get("name") == column),
        None,
    )
    if source is None or "expr" not in source:
        return None
    schema = table.get("schema", [])
    if not isinstance(schema, list):
        return None
    declared = next((c for c in schema if isinstance(c, dict) and c.get("name") == column), None)
    if declared is not None and declared.get("type", "string") != "date":
        return None

    new_mapping = {k: v for k, v in mapping.items() if k != "partition_by"}
    produced = {c.get("name") for c in columns if isinstance(c, dict)}
    new_mapping["columns"] = columns + [
        {"name": part, "expr": {"kind": part, "input": source["expr"]}}
        for part in PARTITION_COLUMNS
        if part not in produced
    ]
    declared_names = {c.get("name") for c in schema if isinstance(c, dict)}
    new_table = dict(table)
    new_table["schema"] = schema + [
        {"name": part, "type": "int64"} for part in PARTITION_COLUMNS if part not in declared_names
    ]
    # E1 partitioning was per mapping and E2's is per table; an E1 table has no keys of its own to keep.
    new_table["partition_keys"] = list(PARTITION_COLUMNS)
    return new_mapping, new_table
