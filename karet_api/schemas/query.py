"""SQL over a pipeline's tables: Karet's query and saved queries, and the KalamDB-style SQL API."""

from typing import Any, Literal

from pydantic import BaseModel, Field


class QueryRequest(BaseModel):
    # Optional here so that an absent or empty `sql` is Karet's `missing_sql`, not a schema error.
    sql: str | None = Field(default=None, description="One SELECT (or WITH … SELECT), at most 10 000 chars")
    versions: dict[str, int] | None = Field(
        default=None,
        description="Table id → Delta version to read (time travel); others at their current one",
    )


class QueryResponse(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="One object per row, keyed by column name")
    rowCount: int


class SavedQueryCreate(BaseModel):
    name: str | None = None
    sql: str | None = None


class SavedQueryPublic(BaseModel):
    id: str = Field(description="nameToSlug(name)")
    name: str
    sql: str


class SavedQueryList(BaseModel):
    queries: list[SavedQueryPublic]


class SqlRequest(BaseModel):
    sql: str | None = None
    params: list[Any] | None = Field(default=None, description="Values of `$1` … `$n`, bound, never inlined")
    namespace_id: str | None = Field(
        default=None, description="Default namespace (a pipeline's slug with `-` as `_`) of this request"
    )


class SqlColumn(BaseModel):
    name: str
    data_type: str
    index: int


class SqlResult(BaseModel):
    schema_: list[SqlColumn] = Field(alias="schema", serialization_alias="schema")
    rows: list[list[Any]]
    row_count: int
    as_user: str


class SqlResponse(BaseModel):
    status: Literal["success"] = "success"
    results: list[SqlResult]
    took: float = Field(description="Milliseconds")


class SqlError(BaseModel):
    code: str = Field(description="INVALID_SQL, TABLE_NOT_FOUND, PERMISSION_DENIED, …")
    message: str
    details: dict[str, Any] | None = None


class SqlErrorResponse(BaseModel):
    status: Literal["error"] = "error"
    results: list[Any] = Field(default_factory=list)
    took: float
    error: SqlError
