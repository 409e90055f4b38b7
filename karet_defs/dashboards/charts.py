"""Vega-Lite specs of dashboard panels, the same in the browser (vega-embed) and on the server (vl-convert).

Each spec reads its rows from the named dataset ``rows`` (a list of objects, as ``…/data`` answers a
panel) and holds nothing else from outside: no URL, no font or theme to fetch. The plotted columns are the
panel's own (``value``, ``label``, ``x``, ``y``, ``source``, ``target``), so a query may name them as it
likes. Bars and doughnut slices keep the order of the query's ``ORDER BY``. Tables are not charted (None);
a sankey is drawn as a bar per flow (``source → target``), which vega-embed and vl-convert both render,
where a real sankey would need a Vega transform neither ships. ``preview_spec`` lays a dashboard's first
charted panels out as one image, their rows inlined.
"""

from typing import Any

from karet_defs.dashboards.models import Dashboard, Panel

# The Vega-Lite release vl-convert renders previews with and bundles for the dashboard page.
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
DATA = {"name": "rows"}
PREVIEW_WIDTH = 800
PREVIEW_PANELS = 4
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "INR": "₹"}


def panel_spec(panel: Panel) -> dict[str, Any] | None:
    """The panel's chart as a Vega-Lite spec over the named dataset ``rows``; None for a table, or for a
    kind that is not charted."""
    build = _BUILDERS.get(panel.kind)
    if build is None:
        return None
    return {
        "$schema": SCHEMA,
        "title": panel.title,
        "data": dict(DATA),
        "width": "container",
        "height": 240,
        **build(panel),
    }


def _kpi(panel: Panel) -> dict[str, Any]:
    return {
        "height": 80,
        "transform": [{"calculate": _formatted(panel, f"datum[{_js(panel.value)}]"), "as": "text"}],
        "mark": {
            "type": "text",
            "fontSize": 40,
            "fontWeight": "bold",
            "align": "center",
            "baseline": "middle",
        },
        "encoding": {"text": {"field": "text", "type": "nominal"}},
    }


def _formatted(panel: Panel, value: str) -> str:
    """A Vega expression writing ``value`` as the panel's ``format`` asks (``currency`` with its symbol)."""
    if panel.format == "raw":
        return f"isValid({value}) ? {value} + '' : '—'"
    number = f"format({value}, ',.2f')" if panel.format == "currency" else f"format({value}, ',.2~f')"
    if panel.format == "currency":
        code = (panel.currency or "USD").upper()
        number = f"{_js(_CURRENCY_SYMBOLS.get(code, code + ' '))} + {number}"
    return f"isValid({value}) ? {number} : '—'"


def _bar(panel: Panel) -> dict[str, Any]:
    label = {"field": panel.label, "type": "nominal", "sort": None, "title": None}
    value = {"field": panel.value, "type": "quantitative", "title": None}
    tooltip = [{"field": panel.label, "type": "nominal"}, {"field": panel.value, "type": "quantitative"}]
    axes = {"y": label, "x": value} if panel.horizontal else {"x": label, "y": value}
    return {"mark": {"type": "bar", "tooltip": True}, "encoding": {**axes, "tooltip": tooltip}}


def _line(panel: Panel) -> dict[str, Any]:
    return {
        "mark": {"type": "line", "point": True, "tooltip": True},
        "encoding": {
            "x": {"field": panel.x, "type": "temporal", "title": None},
            "y": {"field": panel.y, "type": "quantitative", "title": None},
        },
    }


def _doughnut(panel: Panel) -> dict[str, Any]:
    return {
        "transform": [{"window": [{"op": "row_number", "as": "order"}]}],
        "mark": {"type": "arc", "innerRadius": 50, "tooltip": True},
        "encoding": {
            "theta": {"field": panel.value, "type": "quantitative", "stack": True},
            "color": {"field": panel.label, "type": "nominal", "sort": None, "title": None},
            "order": {"field": "order", "type": "quantitative"},
        },
    }


def _sankey(panel: Panel) -> dict[str, Any]:
    flow = f"datum[{_js(panel.source)}] + ' → ' + datum[{_js(panel.target)}]"
    return {
        "transform": [{"calculate": flow, "as": "flow"}],
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {"field": "flow", "type": "nominal", "sort": None, "title": None},
            "x": {"field": panel.value, "type": "quantitative", "title": None},
        },
    }


_BUILDERS = {"kpi": _kpi, "bar": _bar, "line": _line, "doughnut": _doughnut, "sankey": _sankey}


def _js(text: str) -> str:
    """``text`` as a Vega expression string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def preview_spec(dashboard: Dashboard, rows: list[list[dict[str, Any]] | None]) -> dict[str, Any] | None:
    """The dashboard's first ``PREVIEW_PANELS`` charted panels (``rows[i]`` answering panel ``i``; None
    for one that failed) side by side, two a row, ``PREVIEW_WIDTH`` pixels wide; None if none charts."""
    columns = min(2, dashboard.layout.columns)
    width = (PREVIEW_WIDTH - 80 * columns) // columns  # room for axis labels and a legend
    views = []
    for panel, answer in zip(dashboard.panels, rows, strict=True):
        spec = panel_spec(panel) if answer is not None else None
        if spec is None:
            continue
        del spec["$schema"]
        views.append({**spec, "data": {"values": answer}, "width": width})
        if len(views) == PREVIEW_PANELS:
            break
    if not views:
        return None
    return {
        "$schema": SCHEMA,
        "title": {"text": dashboard.name, "anchor": "start", "fontSize": 16},
        "columns": columns,
        "concat": views,
        "background": "white",
        "padding": 12,
    }
