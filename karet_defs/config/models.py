"""Typed model of ``pipeline.json`` (REFERENCE §1, §9): sources, lookups or dimensions, mappings, tables,
rollups and the AstNode union.

Parsing is strict where Karet's worker was strict (the top-level arrays are required, mappings and
assertions deny unknown fields, an unknown expression ``kind`` is refused) and lenient where it was lenient
(unknown top-level keys, ``layout``, ``output_prefix``). An E2 config carries ``lookup_mappings``, an E4 one
``dimensions`` (Karet's worker required one or the other by era); either array may stand in for the other,
and ``rollups`` is optional.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Col(_Node):
    kind: Literal["col"]
    name: str


class Str(_Node):
    kind: Literal["str"]
    value: str


class Num(_Node):
    kind: Literal["num"]
    value: float


class Bool(_Node):
    kind: Literal["bool"]
    value: bool


class Null(_Node):
    kind: Literal["null"]


class Binary(_Node):
    """Arithmetic, comparison and boolean operators with two operands."""

    kind: Literal["add", "sub", "mul", "div", "eq", "ne", "gt", "lt", "ge", "le", "and", "or"]
    left: "AstNode"
    right: "AstNode"


class Unary(_Node):
    """Operators of one string, boolean or date input."""

    kind: Literal["not", "upper", "lower", "trim", "year", "month", "day"]
    input: "AstNode"


class Contains(_Node):
    kind: Literal["contains"]
    input: "AstNode"
    pattern: str


class Substring(_Node):
    kind: Literal["substring"]
    input: "AstNode"
    start: int = Field(ge=0)
    length: int | None = Field(default=None, ge=0)


class Concat(_Node):
    kind: Literal["concat"]
    sep: str = ""
    args: list["AstNode"]


class If(_Node):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["if"]
    cond: "AstNode"
    then: "AstNode"
    else_: "AstNode" = Field(alias="else")


class Coalesce(_Node):
    kind: Literal["coalesce"]
    args: list["AstNode"]


class ParseDate(_Node):
    kind: Literal["parse_date"]
    input: "AstNode"
    format: str = "%Y-%m-%d"


class Cast(_Node):
    kind: Literal["cast"]
    input: "AstNode"
    to: Literal["int64", "float64", "string", "date", "bool"]


class LookupRef(_Node):
    kind: Literal["lookup_ref"]
    lookup_id: str
    input: "AstNode"


class DimRef(_Node):
    """A dimension lookup (E4); ``value`` names one of the dimension's value columns, default the first."""

    kind: Literal["dim_ref"]
    dim_id: str
    value: str | None = None
    input: "AstNode"


class FromUnix(_Node):
    kind: Literal["from_unix"]
    input: "AstNode"
    unit: Literal["s", "ms"] = "s"


AstNode = Annotated[
    Col
    | Str
    | Num
    | Bool
    | Null
    | Binary
    | Unary
    | Contains
    | Substring
    | Concat
    | If
    | Coalesce
    | ParseDate
    | Cast
    | LookupRef
    | DimRef
    | FromUnix,
    Field(discriminator="kind"),
]

for _model in (
    Binary,
    Unary,
    Contains,
    Substring,
    Concat,
    If,
    Coalesce,
    ParseDate,
    Cast,
    LookupRef,
    DimRef,
    FromUnix,
):
    _model.model_rebuild()

# Kept a plain string so a stored config with a typo still parses; validation names the bad type.
ColumnType = str
COLUMN_TYPES = ("string", "number", "int64", "float64", "date", "bool")


class ColumnAssertions(_Node):
    not_null: bool = False
    unique: bool = False
    accepted_values: list[str] | None = None
    min: float | None = None
    max: float | None = None


class ColumnSchema(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    type: ColumnType = "string"
    nullable: bool | None = None
    assertions: ColumnAssertions | None = None
    path: str | None = None


class SourceContainer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str = ""
    path_prefix: str = ""
    schema_: list[ColumnSchema] = Field(default_factory=list, alias="schema")
    format: Literal["csv", "ndjson", "json"] = "csv"
    record_filter: AstNode | None = None

    def resolved_prefix(self, slug: str) -> str:
        """The lake key prefix: absolute if it starts with ``pipelines/``, else under the pipeline folder."""
        return _resolve_prefix(self.path_prefix, slug)


def _resolve_prefix(path_prefix: str, slug: str) -> str:
    if path_prefix.startswith("pipelines/"):
        return path_prefix
    return f"pipelines/{slug}/{path_prefix}"


class LookupRow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    input_patterns: list[str]
    output: str
    priority: int = 0


class CatchAll(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    output: str


class LookupMapping(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str = ""
    match: str = "keyword_substring"
    case_insensitive: bool = False
    rows: list[LookupRow]
    children: list["LookupMapping"] = Field(default_factory=list)
    catch_all: CatchAll | None = None


class InlineDimensionRow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    patterns: list[str]
    values: list[str]
    priority: int = 0


class InlineRows(BaseModel):
    """Rows written in the config: small, hand-edited tables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[str]
    rows: list[InlineDimensionRow]


class FileRows(BaseModel):
    """Rows read from the CSV files under a lake prefix: one key column, the value columns, a priority."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path_prefix: str
    key: str
    values: list[str]
    priority_column: str | None = None

    def resolved_prefix(self, slug: str) -> str:
        """The lake key prefix, resolved as a source's ``path_prefix`` is (SPEC §2.2)."""
        return _resolve_prefix(self.path_prefix, slug)


class OnMissLiteral(_Node):
    literal: str


class Dimension(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str | None = None
    # A plain string, as for lookups, so validation can point at an unsupported mode.
    match: str = "exact"
    case_insensitive: bool = False
    on_miss: Literal["null", "passthrough"] | OnMissLiteral = "null"
    rows: InlineRows | FileRows

    @property
    def value_columns(self) -> list[str]:
        return self.rows.values


class MappingColumn(_Node):
    name: str
    expr: AstNode


class PartitionBy(_Node):
    """E1 legacy month partitioning; upgraded to ``partition_keys`` on load (REFERENCE §1.9)."""

    column: str
    granularity: str = "month"


class Mapping(_Node):
    id: str
    name: str = ""
    source_container_id: str
    analytic_table_id: str
    columns: list[MappingColumn]
    where: AstNode | None = None
    partition_by: PartitionBy | None = None


class AnalyticTable(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str = ""
    output_prefix: str | None = None
    schema_: list[ColumnSchema] = Field(default_factory=list, alias="schema")
    partition_keys: list[str] = Field(default_factory=list)
    dedup_keys: list[str] = Field(default_factory=list)

    def column(self, name: str) -> ColumnSchema | None:
        return next((c for c in self.schema_ if c.name == name), None)


AGGREGATE_FUNCTIONS = ("count", "sum", "min", "max", "avg", "count_distinct", "median")


class RollupAggregate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    # A plain string so validation can name an unknown function at its own path.
    fn: str
    column: str | None = None
    where: AstNode | None = None

    def output_columns(self) -> list[str]:
        """The target columns this aggregate fills: ``avg`` is stored as a re-aggregatable sum/count pair."""
        if self.fn == "avg":
            return [f"{self.name}_sum", f"{self.name}_count"]
        return [self.name]


class Rollup(BaseModel):
    """Group one analytic table by ``group_by`` and aggregate it into another (REFERENCE §9)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str | None = None
    source_table_id: str
    analytic_table_id: str
    group_by: list[str]
    aggregates: list[RollupAggregate]


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = Field(ge=0)
    source_containers: list[SourceContainer]
    lookup_mappings: list[LookupMapping]
    dimensions: list[Dimension] = Field(default_factory=list)
    mappings: list[Mapping]
    analytic_tables: list[AnalyticTable]
    rollups: list[Rollup] = Field(default_factory=list)
    layout: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _either_era(cls, data: Any) -> Any:
        # An E4 config has `dimensions` and no `lookup_mappings`; a config with neither still reports the
        # missing `lookup_mappings`, as the E2 worker did.
        if isinstance(data, dict) and "dimensions" in data and "lookup_mappings" not in data:
            return {**data, "lookup_mappings": []}
        return data

    def source(self, source_id: str) -> SourceContainer | None:
        return next((s for s in self.source_containers if s.id == source_id), None)

    def table(self, table_id: str) -> AnalyticTable | None:
        return next((t for t in self.analytic_tables if t.id == table_id), None)

    def mappings_of_table(self, table_id: str) -> list[Mapping]:
        return [m for m in self.mappings if m.analytic_table_id == table_id]

    def dimension(self, dim_id: str) -> Dimension | None:
        return next((d for d in self.dimensions if d.id == dim_id), None)

    def rollup_of_table(self, table_id: str) -> Rollup | None:
        """The rollup that writes ``table_id``, if a rollup does."""
        return next((r for r in self.rollups if r.analytic_table_id == table_id), None)
