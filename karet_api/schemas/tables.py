"""Analytic tables: declared schema plus facts from Dagster's latest materialization."""

from typing import Any

from pydantic import BaseModel, Field


class TableInfo(BaseModel):
    id: str
    name: str
    schema_: list[dict[str, Any]] = Field(alias="schema", serialization_alias="schema")
    fileCount: int = Field(description="Data files of the table's current version (0 before its first run)")
    rowCount: int | None = Field(default=None, description="From the latest materialization's metadata")
    bytes: int | None = None
    lastMaterialization: str | None = Field(default=None, description="ISO time of the last materialization")
    lastRunId: str | None = None


class TableList(BaseModel):
    tables: list[TableInfo]
