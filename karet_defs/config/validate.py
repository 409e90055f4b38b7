"""Parse and validate ``pipeline.json``: the checks, message templates and order of REFERENCE §2.2.

``parse_pipeline`` turns raw text into a ``Pipeline`` (JSON decoding, the E1→E2 upgrade of ``migrate``, the
model) and reports every failure as one ``ConfigSchemaError`` naming the JSON location. ``validate_pipeline``
collects every rule violation as a ``ValidationIssue`` of one of the four kinds ``missing_field``,
``duplicate_id``, ``dangling_reference`` and ``schema``, in the original worker's order: id checks per
collection (sources, lookups, dimensions, mappings, tables, rollups), reference checks (source record
filters, then each mapping: source and table ids, lookups and dimensions, table columns, a leftover E1
``partition_by``, ``col`` names, ``where``), table key checks, source prefix checks, and last the checks this
port adds (lookup ``match``, column types) and those of the E4 fields (dimensions, then rollups), in Karet's
message templates. ``load_pipeline`` does both and raises ``ValidationFailed`` carrying every issue.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from karet_defs.config.migrate import upgrade_legacy
from karet_defs.config.models import (
    AGGREGATE_FUNCTIONS,
    COLUMN_TYPES,
    AnalyticTable,
    AstNode,
    Col,
    ColumnSchema,
    Dimension,
    DimRef,
    InlineRows,
    LookupMapping,
    LookupRef,
    Mapping,
    PartitionBy,
    Pipeline,
    Rollup,
    RollupAggregate,
    SourceContainer,
)
from karet_defs.config.walk import iter_nodes
from karet_defs.errors import ConfigSchemaError, ValidationFailed

MAX_DEPTH = 256
# Karet's own configs are a few KiB; a lookup of thousands of rows stays far below this.
MAX_CONFIG_BYTES = 5 * 1024 * 1024
SUPPORTED_MATCHES = ("keyword_substring", "exact")

IssueKind = Literal["missing_field", "duplicate_id", "dangling_reference", "schema"]

_FLOAT_TYPES = frozenset({"float64", "number"})
_MAX_REPORTED_ERRORS = 3
# Fields typed AstNode: pydantic puts the union tag right after them in an error location.
_AST_FIELDS = frozenset({"expr", "record_filter", "where", "left", "right", "input", "cond", "then", "else"})


@dataclass(frozen=True)
class ValidationIssue:
    """One validation error: a kind, the rendered message and a JSON Pointer into the config."""

    kind: IssueKind
    message: str
    path: str

    def to_dict(self) -> dict[str, str]:
        """The ``{kind, message, path}`` object of the validate response."""
        return {"kind": self.kind, "message": self.message, "path": self.path}


def _missing_field(path: str, field: str) -> ValidationIssue:
    return ValidationIssue("missing_field", f"missing field `{field}` at {path}", path)


def _duplicate_id(path: str, kind: str, id_: str) -> ValidationIssue:
    return ValidationIssue("duplicate_id", f"duplicate {kind} id `{id_}` at {path}", path)


def _dangling(path: str, kind: str, target: str) -> ValidationIssue:
    return ValidationIssue("dangling_reference", f"dangling {kind} reference to `{target}` at {path}", path)


def _schema(path: str, message: str) -> ValidationIssue:
    return ValidationIssue("schema", f"schema error at {path}: {message}", path)


def validate_pipeline(p: Pipeline) -> list[ValidationIssue]:
    """Every rule violation of ``p``, in REFERENCE §2.2 order; an empty list means valid."""
    issues: list[ValidationIssue] = []
    _check_ids(p.source_containers, "source_containers", "source_container", True, issues)
    _check_ids(p.lookup_mappings, "lookup_mappings", "lookup_mapping", False, issues)
    _check_ids(p.dimensions, "dimensions", "dimension", False, issues)
    _check_ids(p.mappings, "mappings", "mapping", False, issues)
    _check_ids(p.analytic_tables, "analytic_tables", "analytic_table", True, issues)
    _check_ids(p.rollups, "rollups", "rollup", False, issues)
    for i, source in enumerate(p.source_containers):
        _check_record_filter(p, i, source, issues)
    for i, mapping in enumerate(p.mappings):
        _check_mapping(p, i, mapping, issues)
    for i, table in enumerate(p.analytic_tables):
        _check_table_keys(i, table, issues)
    _check_prefixes(p.source_containers, issues)
    for i, lookup in enumerate(p.lookup_mappings):
        _check_match(lookup, f"/lookup_mappings/{i}", issues)
    for i, source in enumerate(p.source_containers):
        _check_column_types(f"/source_containers/{i}/schema", source.schema_, issues)
    for i, table in enumerate(p.analytic_tables):
        _check_column_types(f"/analytic_tables/{i}/schema", table.schema_, issues)
    for i, dimension in enumerate(p.dimensions):
        _check_dimension(p, i, dimension, issues)
    for i, rollup in enumerate(p.rollups):
        _check_rollup(p, i, rollup, issues)
    _check_rollup_cycles(p, issues)
    return issues


def _check_column_types(path: str, schema: Sequence[ColumnSchema], issues: list[ValidationIssue]) -> None:
    # Karet's worker read an unknown type as a string, so a typo (`numbr`) silently became text.
    for j, column in enumerate(schema):
        if column.type not in COLUMN_TYPES:
            issues.append(
                _schema(
                    f"{path}/{j}/type",
                    f"unknown column type `{column.type}`; expected one of {', '.join(COLUMN_TYPES)}",
                )
            )


def _check_ids(
    items: Sequence[SourceContainer | LookupMapping | Dimension | Mapping | AnalyticTable | Rollup],
    collection: str,
    kind: str,
    name_required: bool,
    issues: list[ValidationIssue],
) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        path = f"/{collection}/{i}/id"
        if not item.id:
            issues.append(_missing_field(path, "id"))
        elif item.id in seen:
            issues.append(_duplicate_id(path, kind, item.id))
        seen.add(item.id)
        if name_required and not item.name:
            issues.append(_missing_field(f"/{collection}/{i}/name", "name"))


def _check_record_filter(p: Pipeline, i: int, source: SourceContainer, issues: list[ValidationIssue]) -> None:
    if source.record_filter is None:
        return
    path = f"/source_containers/{i}/record_filter"
    columns = {c.name for c in source.schema_}
    _check_refs(p, path, source.record_filter, issues)
    for node in iter_nodes(source.record_filter):
        if isinstance(node, Col) and node.name not in columns:
            issues.append(_dangling(path, "source_column", f"{source.id}.{node.name}"))


def _check_mapping(p: Pipeline, i: int, mapping: Mapping, issues: list[ValidationIssue]) -> None:
    base = f"/mappings/{i}"
    # Empty references are reported (the original skipped them silently, REFERENCE §2.2 recommendation) and
    # never resolve, so they cause no follow-up column errors.
    source = p.source(mapping.source_container_id) if mapping.source_container_id else None
    table = p.table(mapping.analytic_table_id) if mapping.analytic_table_id else None
    if not mapping.source_container_id:
        issues.append(_missing_field(f"{base}/source_container_id", "source_container_id"))
    elif source is None:
        issues.append(
            _dangling(f"{base}/source_container_id", "source_container", mapping.source_container_id)
        )
    if not mapping.analytic_table_id:
        issues.append(_missing_field(f"{base}/analytic_table_id", "analytic_table_id"))
    elif table is None:
        issues.append(_dangling(f"{base}/analytic_table_id", "analytic_table", mapping.analytic_table_id))

    expressions = [(f"{base}/columns/{j}/expr", column.expr) for j, column in enumerate(mapping.columns)]
    if mapping.where is not None:
        expressions.append((f"{base}/where", mapping.where))
    for path, expr in expressions:
        _check_refs(p, path, expr, issues)

    if table is not None:
        table_columns = {c.name for c in table.schema_}
        for j, column in enumerate(mapping.columns):
            if column.name not in table_columns:
                issues.append(
                    _dangling(
                        f"{base}/columns/{j}/name", "analytic_table_column", f"{table.id}.{column.name}"
                    )
                )

    produced = {c.name for c in mapping.columns}
    if mapping.partition_by is not None:
        _check_partition_by(base, mapping.partition_by, produced, table, issues)

    if source is not None:
        source_columns = {c.name for c in source.schema_}
        for j, column in enumerate(mapping.columns):
            for node in iter_nodes(column.expr):
                if isinstance(node, Col) and node.name not in source_columns:
                    issues.append(
                        _dangling(f"{base}/columns/{j}/expr", "source_column", f"{source.id}.{node.name}")
                    )
    # ``where`` runs after the projection, so its ``col`` nodes name the mapping's output columns.
    if mapping.where is not None:
        for node in iter_nodes(mapping.where):
            if isinstance(node, Col) and node.name not in produced:
                issues.append(_dangling(f"{base}/where", "mapping_output_column", node.name))


def _check_refs(p: Pipeline, path: str, expr: AstNode, issues: list[ValidationIssue]) -> None:
    """Every ``lookup_ref`` and ``dim_ref`` of ``expr`` resolves, and so does a ``dim_ref``'s value column."""
    for node in iter_nodes(expr):
        if isinstance(node, LookupRef) and _resolve_lookup(node.lookup_id, p.lookup_mappings) is None:
            issues.append(_dangling(path, "lookup", node.lookup_id))
        elif isinstance(node, DimRef):
            dimension = p.dimension(node.dim_id) if node.dim_id else None
            if dimension is None:
                issues.append(_dangling(path, "dimension", node.dim_id))
            elif node.value is not None and node.value not in dimension.value_columns:
                issues.append(_dangling(path, "dimension_value", f"{node.dim_id}.{node.value}"))


def _check_partition_by(
    base: str,
    partition_by: PartitionBy,
    produced: set[str],
    table: AnalyticTable | None,
    issues: list[ValidationIssue],
) -> None:
    # Only a partition_by that upgrade_legacy could not upgrade reaches here; these are the E1 messages.
    column = partition_by.column
    if column not in produced:
        issues.append(_dangling(f"{base}/partition_by/column", "mapping_output_column", column))
    elif table is not None and (declared := table.column(column)) is not None and declared.type != "date":
        issues.append(
            _schema(
                f"{base}/partition_by/column",
                f"partition column `{column}` is type `{declared.type}`; "
                "only `date` columns can be partitioned by month",
            )
        )
    granularity = partition_by.granularity
    if granularity != "month":
        issues.append(
            _schema(
                f"{base}/partition_by/granularity",
                f'unsupported partition granularity: `{granularity}` (supported: "month")',
            )
        )


def _check_table_keys(i: int, table: AnalyticTable, issues: list[ValidationIssue]) -> None:
    types = {c.name: c.type for c in table.schema_}
    path = f"/analytic_tables/{i}/partition_keys"
    if len(table.partition_keys) > 2:
        issues.append(_schema(path, f"{len(table.partition_keys)} partition keys; at most 2 are supported"))
    seen: set[str] = set()
    for key in table.partition_keys:
        if key in seen:
            issues.append(_schema(path, f"duplicate partition key `{key}`"))
            continue
        seen.add(key)
        if key not in types:
            issues.append(_dangling(path, "schema_column", key))
        elif types[key] in _FLOAT_TYPES:
            issues.append(
                _schema(path, f"partition key `{key}` is float-capable; floats make unstable path segments")
            )
    path = f"/analytic_tables/{i}/dedup_keys"
    seen = set()
    for key in table.dedup_keys:
        if key in seen:
            issues.append(_schema(path, f"duplicate dedup key `{key}`"))
            continue
        seen.add(key)
        if key not in types:
            issues.append(_dangling(path, "schema_column", key))


def _check_prefixes(sources: list[SourceContainer], issues: list[ValidationIssue]) -> None:
    for i, source in enumerate(sources):
        _check_key_prefix(f"/source_containers/{i}/path_prefix", source.path_prefix, issues)
    # Every ordered pair, reported at the nested source: a file's source is its first prefix match, so
    # nesting is ambiguous, and two identical prefixes are reported on both sources.
    for i, a in enumerate(sources):
        for j, b in enumerate(sources):
            if i != j and a.path_prefix and b.path_prefix.startswith(a.path_prefix):
                issues.append(
                    _schema(
                        f"/source_containers/{j}/path_prefix",
                        f"prefix `{b.path_prefix}` is nested under `{a.path_prefix}` (source `{a.id}`); "
                        "source prefixes must not overlap",
                    )
                )


def _check_key_prefix(path: str, prefix: str, issues: list[ValidationIssue]) -> bool:
    """Report a missing or malformed ``path_prefix`` at ``path``; whether it is a usable prefix."""
    if not prefix:
        issues.append(_missing_field(path, "path_prefix"))
        return False
    if prefix.startswith("/") or not prefix.endswith("/") or ".." in prefix.split("/"):
        issues.append(
            _schema(
                path,
                f"path_prefix `{prefix}` must be a relative key prefix ending in `/` without `..` segments",
            )
        )
        return False
    return True


def _check_match_name(path: str, match: str, issues: list[ValidationIssue]) -> None:
    if match not in SUPPORTED_MATCHES:
        supported = ", ".join(SUPPORTED_MATCHES)
        issues.append(_schema(f"{path}/match", f"match `{match}` is not supported (supported: {supported})"))


def _check_match(lookup: LookupMapping, path: str, issues: list[ValidationIssue]) -> None:
    _check_match_name(path, lookup.match, issues)
    for j, child in enumerate(lookup.children):
        _check_match(child, f"{path}/children/{j}", issues)


def _check_dimension(p: Pipeline, i: int, dimension: Dimension, issues: list[ValidationIssue]) -> None:
    base = f"/dimensions/{i}"
    _check_match_name(base, dimension.match, issues)
    rows = dimension.rows
    if not rows.values:
        issues.append(_schema(f"{base}/rows/values", "a dimension needs at least one value column"))
    seen: set[str] = set()
    for name in rows.values:
        if name in seen:
            issues.append(_schema(f"{base}/rows/values", f"duplicate value column `{name}`"))
        seen.add(name)
    if isinstance(rows, InlineRows):
        _check_inline_rows(dimension, rows, base, issues)
        return
    path = f"{base}/rows/path_prefix"
    prefix = rows.path_prefix
    if _check_key_prefix(path, prefix, issues):
        # A dimension's CSV files under a source prefix would be ingested as raw rows, and a source's files
        # under a dimension prefix read as reference rows.
        for source in p.source_containers:
            a, b = source.path_prefix, prefix
            if a and (b.startswith(a) or a.startswith(b)):
                issues.append(
                    _schema(
                        path,
                        f"prefix `{b}` overlaps `{a}` (source `{source.id}`); "
                        "dimension and source prefixes must not overlap",
                    )
                )
    if not rows.key:
        issues.append(_missing_field(f"{base}/rows/key", "key"))
    if rows.priority_column == "":
        issues.append(_missing_field(f"{base}/rows/priority_column", "priority_column"))


def _check_inline_rows(
    dimension: Dimension, rows: InlineRows, base: str, issues: list[ValidationIssue]
) -> None:
    keys: dict[str, int] = {}
    for k, row in enumerate(rows.rows):
        path = f"{base}/rows/rows/{k}"
        if len(row.values) != len(rows.values):
            issues.append(
                _schema(
                    f"{path}/values",
                    f"row has {len(row.values)} value(s); the dimension declares "
                    f"{len(rows.values)} value column(s)",
                )
            )
        if dimension.match != "exact":
            continue
        # Exact dimensions are keyed reference data: a repeated key is an error, never a silent last-wins.
        for pattern in row.patterns:
            key = pattern.lower() if dimension.case_insensitive else pattern
            if key in keys:
                issues.append(
                    _schema(f"{path}/patterns", f"dimension `{dimension.id}` has duplicate key `{key}`")
                )
            keys.setdefault(key, k)


def _check_rollup(p: Pipeline, i: int, rollup: Rollup, issues: list[ValidationIssue]) -> None:
    base = f"/rollups/{i}"
    source = _rollup_table(p, rollup.source_table_id, f"{base}/source_table_id", issues)
    target = _rollup_table(p, rollup.analytic_table_id, f"{base}/analytic_table_id", issues)
    if source is not None and source is target:
        issues.append(_schema(f"{base}/analytic_table_id", "a rollup cannot write its own source table"))
        return
    if target is not None:
        writers = [f"mapping `{m.id}`" for m in p.mappings_of_table(target.id)]
        writers += [f"rollup `{r.id}`" for r in p.rollups[:i] if r.analytic_table_id == target.id]
        if writers:
            issues.append(
                _schema(
                    f"{base}/analytic_table_id",
                    f"table `{target.id}` is also written by {writers[0]}; a rollup's table has no other "
                    "writer",
                )
            )
    if not rollup.group_by:
        issues.append(_schema(f"{base}/group_by", "group_by is empty"))
    source_columns = {c.name for c in source.schema_} if source is not None else set()
    seen: set[str] = set()
    for k, column in enumerate(rollup.group_by):
        if column in seen:
            issues.append(_schema(f"{base}/group_by/{k}", f"duplicate group_by column `{column}`"))
        seen.add(column)
        if source is not None and column not in source_columns:
            issues.append(_dangling(f"{base}/group_by/{k}", "analytic_table_column", f"{source.id}.{column}"))
    outputs: dict[str, str] = dict.fromkeys(rollup.group_by, f"{base}/group_by")
    for k, aggregate in enumerate(rollup.aggregates):
        _check_aggregate(p, f"{base}/aggregates/{k}", aggregate, source, outputs, issues)
    if target is None:
        return
    declared = {c.name for c in target.schema_}
    for column, path in outputs.items():
        if column not in declared:
            issues.append(_dangling(path, "analytic_table_column", f"{target.id}.{column}"))
    if source is None:
        return
    # A target partition is then a union of whole source partitions, so a run recomputes only the target
    # partitions over the source partitions it changed.
    extra = [k for k in target.partition_keys if k not in source.partition_keys]
    if extra:
        issues.append(
            _schema(
                f"{base}/analytic_table_id",
                f"partition keys [{', '.join(target.partition_keys)}] of table `{target.id}` are not a "
                f"subset of the partition keys [{', '.join(source.partition_keys)}] "
                f"of its source `{source.id}`",
            )
        )
    for key in target.partition_keys:
        if key not in rollup.group_by:
            issues.append(
                _schema(f"{base}/group_by", f"partition key `{key}` of table `{target.id}` is not grouped by")
            )


def _rollup_table(
    p: Pipeline, table_id: str, path: str, issues: list[ValidationIssue]
) -> AnalyticTable | None:
    if not table_id:
        issues.append(_missing_field(path, path.rsplit("/", 1)[1]))
        return None
    table = p.table(table_id)
    if table is None:
        issues.append(_dangling(path, "analytic_table", table_id))
    return table


def _check_aggregate(
    p: Pipeline,
    path: str,
    aggregate: RollupAggregate,
    source: AnalyticTable | None,
    outputs: dict[str, str],
    issues: list[ValidationIssue],
) -> None:
    if not aggregate.name:
        issues.append(_missing_field(f"{path}/name", "name"))
    if aggregate.fn not in AGGREGATE_FUNCTIONS:
        supported = ", ".join(AGGREGATE_FUNCTIONS)
        issues.append(_schema(f"{path}/fn", f"fn `{aggregate.fn}` is not supported (supported: {supported})"))
    elif aggregate.fn != "count" and not aggregate.column:
        issues.append(_schema(f"{path}/column", f"aggregate `{aggregate.name}` needs a column"))
    # Column checks only when the source resolves, as for a mapping's `col` nodes.
    columns = {c.name for c in source.schema_} if source is not None else None
    source_id = source.id if source is not None else ""
    if columns is not None and aggregate.column and aggregate.column not in columns:
        issues.append(_dangling(f"{path}/column", "analytic_table_column", f"{source_id}.{aggregate.column}"))
    if aggregate.where is not None:
        _check_refs(p, f"{path}/where", aggregate.where, issues)
        for node in iter_nodes(aggregate.where):
            if columns is not None and isinstance(node, Col) and node.name not in columns:
                issues.append(_dangling(f"{path}/where", "analytic_table_column", f"{source_id}.{node.name}"))
    if not aggregate.name:
        return
    for column in aggregate.output_columns():
        if column in outputs:
            issues.append(_schema(f"{path}/name", f"duplicate output column `{column}`"))
        outputs.setdefault(column, f"{path}/name")


def _check_rollup_cycles(p: Pipeline, issues: list[ValidationIssue]) -> None:
    # A rollup may read another rollup's table (avg's sum/count pair exists for that), never its own output.
    feeds = {r.analytic_table_id: r.source_table_id for r in p.rollups}
    for i, rollup in enumerate(p.rollups):
        if rollup.source_table_id == rollup.analytic_table_id:
            continue  # reported as a rollup writing its own source
        seen = {rollup.analytic_table_id}
        current = rollup.source_table_id
        while current in feeds:
            if current in seen:
                issues.append(
                    _schema(
                        f"/rollups/{i}/source_table_id",
                        f"rollups form a cycle through table `{rollup.analytic_table_id}`",
                    )
                )
                break
            seen.add(current)
            current = feeds[current]


def _resolve_lookup(lookup_id: str, lookups: list[LookupMapping]) -> LookupMapping | None:
    """The lookup a dotted id such as ``categories.merchants`` names, or None when any segment is missing."""
    head, *rest = lookup_id.split(".")
    current = next((lk for lk in lookups if lk.id == head), None) if head else None
    for segment in rest:
        if current is None or not segment:
            return None
        current = next((c for c in current.children if c.id == segment), None)
    return current


def parse_pipeline(raw: bytes | str | dict[str, Any]) -> Pipeline:
    """Decode, upgrade and parse a ``pipeline.json``; any failure raises ``ConfigSchemaError``."""
    doc = _decode(raw)
    _check_depth(doc)
    doc = upgrade_legacy(doc)
    try:
        return Pipeline.model_validate(doc)
    except ValidationError as exc:
        raise ConfigSchemaError(_describe(exc, doc), details=_structural_issues(exc, doc)) from exc
    except RecursionError as exc:  # a cyclic dict handed in by a caller
        raise ConfigSchemaError(f"config nesting is deeper than the limit of {MAX_DEPTH} levels") from exc


def load_pipeline(raw: bytes | str | dict[str, Any]) -> Pipeline:
    """Parse and validate a ``pipeline.json``; raise ``ValidationFailed`` listing every issue."""
    pipeline = parse_pipeline(raw)
    issues = validate_pipeline(pipeline)
    if issues:
        raise ValidationFailed(
            issues[0].message, code=issues[0].kind, details=[issue.to_dict() for issue in issues]
        )
    return pipeline


class _NonFiniteNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


def _decode(raw: object) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, bytes | bytearray | str) and len(raw) > MAX_CONFIG_BYTES:
        # Bounded before decoding: a 100 MB expression would otherwise cost seconds and gigabytes to refuse.
        raise ConfigSchemaError(
            f"config is {len(raw)} bytes long; the limit is {MAX_CONFIG_BYTES} bytes (5 MiB)"
        )
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigSchemaError(f"config is not valid UTF-8 (byte {exc.start})") from exc
    elif isinstance(raw, str):
        text = raw.removeprefix("\ufeff")
    else:
        raise ConfigSchemaError(f"config must be JSON text or an object, not {type(raw).__name__}")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ConfigSchemaError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except _NonFiniteNumber as exc:
        raise ConfigSchemaError(f"invalid JSON: `{exc}` is not a JSON number") from exc
    except RecursionError as exc:
        raise ConfigSchemaError(f"config nesting is deeper than the limit of {MAX_DEPTH} levels") from exc
    if not isinstance(doc, dict):
        raise ConfigSchemaError(f"config must be a JSON object, not {_json_type(doc)}")
    return doc


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _check_depth(doc: dict[str, Any]) -> None:
    # Bounded before the model sees the document: pydantic and every recursive consumer (the expression
    # compiler, json.dumps) would otherwise fail on a deep expression with a RecursionError or worse.
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(doc, 1, ())]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigSchemaError(
                f"{'.'.join(where)}: nesting is deeper than the limit of {MAX_DEPTH} levels"
            )
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            if isinstance(child, dict | list):
                # Only the first few steps are kept: enough to name the culprit, cheap for long chains.
                stack.append((child, depth + 1, where + (str(key),) if len(where) < 5 else where))


def _describe(exc: ValidationError, doc: dict[str, Any]) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [
        f"{'.'.join(_location(e['loc'], doc)) or '(root)'}: {_reason(e)}"
        for e in errors[:_MAX_REPORTED_ERRORS]
    ]
    more = len(errors) - _MAX_REPORTED_ERRORS
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _structural_issues(exc: ValidationError, doc: dict[str, Any]) -> list[dict[str, str]]:
    """Every model error as a ``{kind, message, path}`` detail in Karet's templates, so an editor can point
    at each node: a missing required field is ``missing_field``, anything else ``schema``."""
    issues = []
    for error in exc.errors(include_url=False, include_input=False):
        where = _location(error["loc"], doc)
        if error["type"] == "missing":
            issues.append(_missing_field(_pointer(where), where[-1]))
        else:
            issues.append(_schema(_pointer(where), _reason(error)))
    return [issue.to_dict() for issue in issues]


def _pointer(parts: list[str]) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts) or "/"


def _location(loc: tuple[int | str, ...], doc: dict[str, Any]) -> list[str]:
    """The JSON location of a pydantic error, step by step, without the union tags pydantic inserts."""
    parts: list[str] = []
    node: Any = doc
    at_union = False
    for item in loc:
        if at_union and isinstance(node, dict) and node.get("kind") == item:
            at_union = False
            continue
        parts.append(str(item))
        at_union = item in _AST_FIELDS or (isinstance(item, int) and parts[-2:-1] == ["args"])
        if isinstance(node, dict):
            node = node.get(item)
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            node = node[item]
        else:
            node = None
    return parts


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        return f"unknown expression kind {error['ctx']['tag']!r}"
    if kind == "union_tag_not_found":
        return "expression has no `kind`"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "recursion_loop":
        return f"nesting is deeper than the limit of {MAX_DEPTH} levels"
    return str(error["msg"])
