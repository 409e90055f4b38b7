"""The one shape of a dashboard, whichever file it came from: filters, SQL panels and a layout.

A v2 YAML file maps onto it field for field; a v1 JSON file is translated into it (``legacy``), so every
panel downstream is a SQL query with ``$name`` parameters. The shape is what the dashboard page embeds
(``Dashboard.model_dump(mode="json")``); what only the server needs (a dropdown's ``options_sql``, the
values v1 literals are bound to) is excluded from it. A panel names the columns of its result it plots
(``value``, ``label``, ``x``, ``y``, ``source``, ``target``), each defaulting to its own name. A panel the
server cannot answer (an unknown kind, a v1 map) is kept, and ``Panel.problem`` says why.
"""

import json
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from karet_defs.errors import InvalidDashboard

PANEL_KINDS = ("kpi", "bar", "line", "doughnut", "sankey", "table")
# The result columns each kind plots, by the panel field naming them.
PLOTTED = {
    "kpi": ("value",),
    "bar": ("label", "value"),
    "doughnut": ("label", "value"),
    "line": ("x", "y"),
    "sankey": ("source", "target", "value"),
    "table": (),
}
TABLE_PAGE_SIZE = 50
# A filter's name becomes a SQL parameter (``$name``, ``$name_from``): a plain identifier.
_PARAMETER = r"^[A-Za-z_][A-Za-z0-9_]*$"
M = TypeVar("M", bound=BaseModel)


class _Part(BaseModel):
    # Karet's editors add fields of their own; they are dropped, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Emit(_Part):
    """Clicking a mark sets the dropdown filter ``param`` to the mark's label (a cross-filter)."""

    param: str


class Grid(_Part):
    span: int | None = Field(default=None, ge=1)
    aspect: Literal["square", "video", "auto"] | None = None
    maxHeight: int | str | None = None  # Karet's own spelling, which the page reads


class Layout(_Part):
    columns: int = Field(default=2, ge=1, le=12)
    gap: int = Field(default=16, ge=0)


class DashboardFilter(_Part):
    name: str = Field(pattern=_PARAMETER)
    kind: Literal["dropdown", "date_range"]
    label: str = ""
    options_sql: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _label_defaults_to_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("label"):
            return {**data, "label": data.get("name", "")}
        return data


class Panel(_Part):
    kind: str
    title: str = ""
    query: str | None = None
    format: str | None = None
    currency: str | None = None
    icon: str | None = None
    horizontal: bool = False
    page_size: int | None = Field(default=None, ge=1)
    value: str = "value"
    label: str = "label"
    x: str = "x"
    y: str = "y"
    source: str = "source"
    target: str = "target"
    emit: Emit | None = None
    grid: Grid | None = None

    @model_validator(mode="before")
    @classmethod
    def _table_page_size(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "table" and data.get("page_size") is None:
            return {**data, "page_size": TABLE_PAGE_SIZE}
        return data

    @property
    def problem(self) -> str | None:
        """Why the server cannot answer this panel, or None."""
        if self.kind not in PANEL_KINDS:
            return f"panel kind `{self.kind}` is not supported (supported: {', '.join(PANEL_KINDS)})"
        if self.query is None or not self.query.strip():
            return "the panel has no query"
        return None

    @property
    def plotted(self) -> dict[str, str]:
        """The result columns the panel's chart needs, by the field naming each: ``{"value": "total"}``."""
        return {field: getattr(self, field) for field in PLOTTED.get(self.kind, ())}


class Dashboard(_Part):
    id: str
    name: str
    version: Literal[1, 2]
    filters: list[DashboardFilter] = []
    panels: list[Panel] = []
    layout: Layout = Layout()
    # v1 literals (a `where` value, a Top-N limit, a sankey node), bound as parameters under names no
    # filter can have: they begin with `__`, which a v1 filter name (a column slug) never does.
    constants: dict[str, Any] = Field(default={}, exclude=True)

    @field_validator("filters")
    @classmethod
    def _distinct_filter_names(cls, filters: list[DashboardFilter]) -> list[DashboardFilter]:
        names = [f.name for f in filters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"filter names must differ: {', '.join(repeated)} repeated")
        return filters


def read_document(body: bytes, *, yaml_text: bool) -> dict[str, Any]:
    """The file's top-level mapping, parsed as YAML or JSON; ``invalid_dashboard`` when it is not one."""
    try:
        document = yaml.safe_load(body) if yaml_text else json.loads(body)
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        raise invalid(f"the dashboard does not parse: {exc}") from exc
    if not isinstance(document, dict):
        raise invalid("a dashboard is a mapping of fields (`name`, `filters`, `panels`, ...)")
    return document


def parse_v2(document: dict[str, Any], dashboard_id: str) -> Dashboard:
    """A v2 document as a dashboard: fields as they are; each panel needs a query."""
    name = document.get("name")
    fields = {
        **document,
        "id": dashboard_id,
        "version": 2,
        "name": (name.strip() or dashboard_id) if isinstance(name, str) else dashboard_id,
    }
    fields.pop("constants", None)
    dashboard = build(Dashboard, fields)
    missing = [
        problem("missing_field", f"panel {i} (`{p.title or p.kind}`) has no query", f"/panels/{i}/query")
        for i, p in enumerate(dashboard.panels)
        if p.kind in PANEL_KINDS and not (p.query or "").strip()
    ]
    if missing:
        raise InvalidDashboard(missing[0]["message"], details=missing)
    return dashboard


def build(model: type[M], fields: dict[str, Any]) -> M:
    """``model`` from ``fields``; pydantic's complaints as ``invalid_dashboard`` with JSON Pointer paths."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        details = [
            problem("schema", str(e["msg"]), "/" + "/".join(str(part) for part in e["loc"]))
            for e in exc.errors()
        ]
        raise InvalidDashboard(f"{details[0]['path']}: {details[0]['message']}", details=details) from exc


def problem(kind: str, message: str, path: str) -> dict[str, str]:
    return {"kind": kind, "message": message, "path": path}


def invalid(message: str, path: str = "/") -> InvalidDashboard:
    return InvalidDashboard(message, details=[problem("schema", message, path)])
