"""Vega-Lite specs per panel kind: self-contained but for the named rows, and rendered as they are."""

import json
import re
import struct

import pytest
import vl_convert

from karet_defs.dashboards.charts import PREVIEW_PANELS, panel_spec, preview_spec
from karet_defs.dashboards.models import Dashboard, Panel
from karet_defs.dashboards.preview import to_png
from karet_defs.errors import PreviewFailed

ROWS = {
    "kpi": [{"total": 1234.5}],
    "bar": [{"label": "RENT", "value": 1850.0}, {"label": "SHELL", "value": 52.4}],
    "line": [{"x": "2026-04-01", "y": 4794.46}, {"x": "2026-05-01", "y": 4286.31}],
    "doughnut": [{"label": "BILLS", "value": 3990.36}, {"label": "FOOD", "value": 53.85}],
    "sankey": [{"source": "Income", "target": "Spent", "value": 5169.23}],
}


def _panel(kind, **fields):
    return Panel(kind=kind, title=f"A {kind}", query="SELECT 1", **fields)


def _width(png: bytes) -> int:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">I", png[16:20])[0]


@pytest.mark.parametrize("kind", list(ROWS))
def test_each_charted_kind_reads_the_named_rows_and_nothing_from_outside(kind):
    spec = panel_spec(_panel(kind, value="total") if kind == "kpi" else _panel(kind))

    assert spec["data"] == {"name": "rows"} and spec["title"] == f"A {kind}"
    assert "url" not in json.dumps(spec)
    rendered = {**spec, "data": {"values": ROWS[kind]}, "width": 300}
    assert _width(to_png(rendered)) >= 300


def test_tables_and_unknown_kinds_are_not_charted():
    assert panel_spec(_panel("table")) is None
    assert panel_spec(_panel("heatmap")) is None


def test_a_horizontal_bar_puts_labels_on_y_in_the_querys_order():
    horizontal = panel_spec(_panel("bar", horizontal=True, label="who", value="n"))["encoding"]
    vertical = panel_spec(_panel("bar"))["encoding"]

    assert (horizontal["y"]["field"], horizontal["x"]["field"], horizontal["y"]["sort"]) == ("who", "n", None)
    assert (vertical["x"]["field"], vertical["y"]["field"]) == ("label", "value")


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"format": "currency", "currency": "EUR"}, "€1,234.50"),
        ({"format": "currency"}, "$1,234.50"),
        ({}, "1,234.5"),
        ({"format": "raw"}, "1234.5"),
    ],
)
def test_a_kpi_writes_its_value_as_its_format_asks(fields, shown):
    spec = panel_spec(_panel("kpi", **fields))

    # vl-convert runs the same Vega the browser does: the SVG holds the text a person reads.
    svg = vl_convert.vegalite_to_svg({**spec, "data": {"values": [{"value": 1234.5}]}, "width": 200})

    assert re.findall(r"<text[^>]*>([^<]*)</text>", svg) == [shown, "A kpi"]


def test_a_preview_lays_out_the_first_charted_panels_that_answered():
    panels = [_panel("table"), _panel("kpi"), _panel("bar"), *[_panel("line") for _ in range(5)]]
    dashboard = Dashboard(id="d", name="Board", version=2, panels=panels)
    rows = [[], None, ROWS["bar"], *[ROWS["line"]] * 5]  # the kpi failed: None

    spec = preview_spec(dashboard, rows)

    assert [v["title"] for v in spec["concat"]] == ["A bar", *["A line"] * (PREVIEW_PANELS - 1)]
    assert spec["concat"][0]["data"] == {"values": ROWS["bar"]}
    assert 700 <= _width(to_png(spec)) <= 900


def test_a_preview_of_nothing_charted_is_none():
    dashboard = Dashboard(id="d", name="Board", version=2, panels=[_panel("table")])

    assert preview_spec(dashboard, [[{"a": 1}]]) is None


def test_a_spec_vega_cannot_render_is_preview_failed():
    with pytest.raises(PreviewFailed, match="the chart could not be rendered"):
        to_png({"mark": "nope"})
