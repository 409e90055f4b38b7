"""Typed model of ``pipeline.json`` (REFERENCE §1): sources, lookups, mappings, tables and the AstNode union.

Parsing is strict where Karet's worker was strict (the four top-level arrays are required, mappings and
assertions deny unknown fields, an unknown expression ``kind`` is refused) and lenient where it was lenient
(unknown top-level keys, ``layout``, ``output_prefix``).
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
        if self.path_prefix.startswith("pipelines/"):
            return self.path_prefix
        return f"pipelines/{slug}/{self.path_prefix}"


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


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = Field(ge=0)
    source_containers: list[SourceContainer]
    lookup_mappings: list[LookupMapping]
    mappings: list[Mapping]
    analytic_tables: list[AnalyticTable]
    layout: dict[str, Any] = Field(default_factory=dict)

    def source(self, source_id: str) -> SourceContainer | None:
        return next((s for s in self.source_containers if s.id == source_id), None)

    def table(self, table_id: str) -> AnalyticTable | None:
        return next((t for t in self.analytic_tables if t.id == table_id), None)

    def mappings_of_table(self, table_id: str) -> list[Mapping]:
        return [m for m in self.mappings if m.analytic_table_id == table_id]
