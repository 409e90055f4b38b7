"""v1 JSON dashboards (Karet E1/E2) translated into SQL panels over their one analytic table.

Karet's v1 page loaded every row of ``analytic_table_id`` and aggregated in the browser; here each panel
becomes one DuckDB query doing the same aggregation, so v1 and v2 dashboards run, chart and validate
alike. Identifiers (the table, columns) are quoted; every value from the file (a ``where`` literal, a
Top-N limit, a bin width, a sankey node) is bound as a parameter named ``__c<n>``, never written into the
text. The dashboard-level ``where`` keeps v1's own null rule: a comparison with null is false, except
``ne``, which is true. A filter on column ``c`` is the parameter ``nameToSlug(c)``: a dropdown matches
everything while it is unset (NULL); a date range compares the column read as a date. Kinds v1 drew that
SQL panels do not (``summary``, maps) stay in the dashboard with no query, and answer an error.
"""

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from karet_defs.config.models import AstNode, Binary, Bool, Coalesce, Col, Contains, Null, Num, Str, Unary
from karet_defs.dashboards.models import Dashboard, build, invalid
from karet_defs.query.engine import quote_identifier as _quote
from karet_defs.query.names import name_to_slug

# Rows a v1 table panel shows (the page pages through them); v1 loaded them all, a server answer is capped.
TABLE_ROWS = 1000
_WHERE_KINDS = "col str num bool null eq ne gt lt ge le contains upper lower trim coalesce"
_COMPARISONS = {"eq": "=", "ne": "<>", "gt": ">", "lt": "<", "ge": ">=", "le": "<="}
_SPAN = re.compile(r"^\s*span\s+(\d+)\s*$")
_LEADING_NUMBER = re.compile(r"^\s*(\d+)")


class _V1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class V1Filter(_V1):
    kind: Literal["dropdown", "date_range"]
    column: str = Field(min_length=1)
    label: str | None = None


class V1Flow(_V1):
    from_: str = Field(alias="from")
    to: str
    value: str | None = None
    agg: Literal["sum", "abs_sum", "count"] = "sum"
    where: list[AstNode] = []


class V1Panel(_V1):
    kind: str
    title: str = ""
    column: str | None = None
    value_column: str | None = None
    agg: Literal["sum", "count", "avg", "min", "max", "mode"] | None = None
    format: str | None = None
    currency: str | None = None
    icon: str | None = None
    group_by: str | None = None
    value: str | None = None
    limit: int | None = Field(default=None, ge=1)
    x: str | None = None
    x_bin: Literal["day", "week", "month", "year"] | None = None
    y: str | None = None
    columns: list[str] = []
    page_size: int | None = Field(default=None, ge=1)
    flows: list[V1Flow] = []
    labels: dict[str, str] = {}
    grid: dict[str, Any] | None = None


class V1Layout(_V1):
    columns: int | None = Field(default=None, ge=1, le=12)
    gap: int | str | None = None


class V1Document(_V1):
    name: str | None = None
    analytic_table_id: str = Field(min_length=1)
    where: list[AstNode] = []
    filters: list[V1Filter] = []
    panels: list[V1Panel] = []
    layout: V1Layout | None = None


def parse_v1(document: dict[str, Any], dashboard_id: str) -> Dashboard:
    """A v1 dashboard as SQL panels; ``invalid_dashboard`` (with the path) for what cannot be translated."""
    v1 = build(V1Document, document)
    sql = _Translator(v1)
    name = (v1.name or "").strip() or dashboard_id
    layout = v1.layout or V1Layout()
    gap = _LEADING_NUMBER.match(str(layout.gap)) if layout.gap is not None else None
    return build(
        Dashboard,
        {
            "id": dashboard_id,
            "name": name,
            "version": 1,
            "filters": sql.filters,
            "panels": [sql.panel(p, f"/panels/{i}") for i, p in enumerate(v1.panels)],
            "layout": {"columns": layout.columns or 2, "gap": int(gap.group(1)) if gap else 16},
            "constants": sql.constants,
        },
    )


class _Translator:
    """Builds each panel's SQL, collecting the values it binds."""

    def __init__(self, v1: V1Document) -> None:
        self.constants: dict[str, Any] = {}
        self.table = _quote(v1.analytic_table_id)
        self.conditions = [self.where(node, f"/where/{i}") for i, node in enumerate(v1.where)]
        self.filters: list[dict[str, Any]] = []
        for f in v1.filters:
            name = self._filter_name(f.column)
            column = _quote(f.column)
            if f.kind == "dropdown":
                self.conditions.append(f"(${name} IS NULL OR {column} = ${name})")
                options = (
                    f"SELECT DISTINCT {column} AS value FROM {self.table} "
                    f"WHERE {column} IS NOT NULL AND {self._where(self.conditions[: len(v1.where)])} "
                    "ORDER BY 1"
                )
            else:
                self.conditions.append(f"TRY_CAST({column} AS DATE) BETWEEN ${name}_from AND ${name}_to")
                options = None
            self.filters.append(
                {"name": name, "kind": f.kind, "label": f.label or f.column, "options_sql": options}
            )

    def _filter_name(self, column: str) -> str:
        base = name_to_slug(column)
        base = f"f_{base}" if base[0].isdigit() else base
        taken = {f["name"] for f in self.filters}
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        return name

    def bind(self, value: object) -> str:
        name = f"__c{len(self.constants)}"
        self.constants[name] = value
        return f"${name}"

    def where(self, node: AstNode, path: str) -> str:
        """One ``where`` node as SQL with v1's null rule."""
        if isinstance(node, Col):
            return _quote(node.name)
        if isinstance(node, Str | Num | Bool):
            return self.bind(node.value)
        if isinstance(node, Null):
            return "NULL"
        if isinstance(node, Binary) and node.kind in _COMPARISONS:
            left, right = self.where(node.left, f"{path}/left"), self.where(node.right, f"{path}/right")
            return f"coalesce(({left}) {_COMPARISONS[node.kind]} ({right}), {str(node.kind == 'ne').lower()})"
        if isinstance(node, Contains):
            text = self.where(node.input, f"{path}/input")
            return f"coalesce(contains(CAST(({text}) AS VARCHAR), {self.bind(node.pattern)}), false)"
        if isinstance(node, Unary) and node.kind in ("upper", "lower", "trim"):
            return f"{node.kind}(({self.where(node.input, f'{path}/input')}))"
        if isinstance(node, Coalesce):
            args = [self.where(a, f"{path}/args/{i}") for i, a in enumerate(node.args)]
            return f"coalesce({', '.join(args)})" if args else "NULL"
        raise invalid(f"`{node.kind}` is not allowed in a dashboard's where (allowed: {_WHERE_KINDS})", path)

    def panel(self, p: V1Panel, path: str) -> dict[str, Any]:
        common = {"kind": p.kind, "title": p.title, "icon": p.icon, "grid": _grid(p.grid)}
        where = self._where(self.conditions)
        if p.kind == "kpi":
            value = self._agg(p.agg, p.column or p.value_column, path)
            currency = p.currency or ("USD" if p.format == "currency" else None)
            query = f'SELECT {value} AS "value" FROM {self.table} WHERE {where}'
            return dict(**common, query=query, format=p.format, currency=currency)
        if p.kind in ("doughnut", "bar") and p.x_bin is None:
            group = _quote(_required(p.group_by, "group_by", path))
            query = (
                f'SELECT {group} AS "label", {self._agg(p.agg, p.value, path)} AS "value" FROM {self.table} '
                f"WHERE {where} GROUP BY 1 ORDER BY 2 DESC NULLS LAST"
            )
            if p.kind == "bar" and p.limit is not None:
                query += f" LIMIT {self.bind(p.limit)}"
            return dict(**common, query=query, horizontal=p.kind == "bar")
        if p.kind == "bar":
            label = self._binned(_required(p.group_by, "group_by", path), p.x_bin)
            query = (
                f'SELECT {label} AS "label", {self._agg(p.agg, p.value, path)} AS "value" FROM {self.table} '
                f"WHERE {where} GROUP BY 1 ORDER BY 1"
            )
            return dict(**common, query=query)
        if p.kind == "line":
            x = _required(p.x, "x", path)
            label = self._binned(x, p.x_bin) if p.x_bin else _quote(x)
            query = (
                f'SELECT {label} AS "x", {self._agg(p.agg, p.y, path)} AS "y" FROM {self.table} '
                f"WHERE {where} GROUP BY 1 ORDER BY 1"
            )
            return dict(**common, query=query)
        if p.kind == "table":
            columns = ", ".join(_quote(c) for c in p.columns) or "*"
            query = f"SELECT {columns} FROM {self.table} WHERE {where} LIMIT {self.bind(TABLE_ROWS)}"
            return dict(**common, query=query, page_size=p.page_size)
        if p.kind == "sankey":
            return dict(**common, query=self._sankey(p, where, path))
        return dict(**common)

    def _sankey(self, p: V1Panel, where: str, path: str) -> str:
        if not p.flows:
            raise invalid("a sankey panel needs at least one flow", f"{path}/flows")
        links = []
        for i, flow in enumerate(p.flows):
            at = f"{path}/flows/{i}"
            conditions = [where, *(self.where(n, f"{at}/where/{j}") for j, n in enumerate(flow.where))]
            value = (
                f"sum(abs({_quote(_required(flow.value, 'value', at))}))"
                if flow.agg == "abs_sum"
                else self._agg(flow.agg, flow.value, at)
            )
            source = self.bind(p.labels.get(flow.from_, flow.from_))
            target = self.bind(p.labels.get(flow.to, flow.to))
            links.append(
                f'SELECT {source} AS "source", {target} AS "target", {value} AS "value" '
                f"FROM {self.table} WHERE {self._where(conditions)}"
            )
        return " UNION ALL ".join(links)

    def _agg(self, agg: str | None, column: str | None, path: str) -> str:
        """``agg(column)``: a count of rows without a column, a sum with one, when ``agg`` is not given."""
        agg = agg or ("sum" if column else "count")
        if agg == "count":
            return f"count({_quote(column)})" if column else "count(*)"
        return f"{agg}({_quote(_required(column, 'column', path))})"

    def _binned(self, column: str, unit: str | None) -> str:
        return f"CAST(date_trunc({self.bind(unit)}, TRY_CAST({_quote(column)} AS DATE)) AS DATE)"

    @staticmethod
    def _where(conditions: list[str]) -> str:
        return " AND ".join(f"({c})" for c in conditions) or "true"


def _grid(grid: dict[str, Any] | None) -> dict[str, Any] | None:
    """v1's CSS-grid placement as v2's: ``gridColumn: "span 2"`` is a span; other placements are dropped."""
    if not grid:
        return None
    span = _SPAN.match(str(grid.get("gridColumn", "")))
    return {
        "span": int(span.group(1)) if span else None,
        "aspect": grid.get("aspect"),
        "maxHeight": grid.get("maxHeight"),
    }


def _required(value: str | None, field: str, path: str) -> str:
    if not value:
        raise invalid(f"missing field `{field}`", f"{path}/{field}")
    return value
