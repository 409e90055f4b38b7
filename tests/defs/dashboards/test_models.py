"""v2 YAML dashboards read into the one shape the page embeds, and the refusals of files that are not one."""

import pytest

from karet_defs.dashboards.models import Dashboard, parse_v2, read_document
from karet_defs.errors import InvalidDashboard
from karet_defs.templates import template_files

PANEL_FIELDS = [
    "kind", "title", "query", "format", "currency", "icon", "horizontal", "page_size",
    "value", "label", "x", "y", "source", "target", "emit", "grid",
]  # fmt: skip


def _v2(text: str, dashboard_id: str = "board") -> Dashboard:
    return parse_v2(read_document(text.encode(), yaml_text=True), dashboard_id)


def test_the_template_dashboard_has_exactly_the_embedded_shape():
    body = template_files("spending")["dashboards/spending_overview.yaml"]

    shape = parse_v2(read_document(body, yaml_text=True), "spending_overview").model_dump(mode="json")

    assert list(shape) == ["id", "name", "version", "filters", "panels", "layout"]
    assert (shape["id"], shape["name"], shape["version"]) == ("spending_overview", "Spending overview", 2)
    assert shape["filters"] == [{"name": "period", "kind": "date_range", "label": "Period"}]
    assert [list(p) for p in shape["panels"]] == [PANEL_FIELDS] * 3
    kpi, doughnut, bar = shape["panels"]
    assert (kpi["format"], kpi["currency"], kpi["value"]) == ("currency", "USD", "value")
    assert (doughnut["label"], doughnut["value"], doughnut["horizontal"]) == ("label", "value", False)
    assert bar["horizontal"] is True
    assert shape["layout"] == {"columns": 2, "gap": 16}


def test_plotted_columns_default_to_their_names_and_may_be_renamed():
    dashboard = _v2(
        "version: 2\npanels:\n"
        "  - {kind: bar, title: A, query: \"SELECT 1 AS n, 'x' AS who\", value: n, label: who}\n"
        "  - {kind: table, title: B, query: SELECT 1}\n"
        "  - {kind: sankey, title: C, query: SELECT 1, emit: {param: who}, grid: {span: 2, aspect: video}}\n"
    )

    bar, table, sankey = dashboard.panels
    assert bar.plotted == {"label": "who", "value": "n"}
    assert (table.plotted, table.page_size) == ({}, 50)
    assert sankey.plotted == {"source": "source", "target": "target", "value": "value"}
    assert sankey.model_dump(mode="json")["emit"] == {"param": "who"}
    assert sankey.model_dump(mode="json")["grid"] == {"span": 2, "aspect": "video", "maxHeight": None}
    assert dashboard.name == "board"  # no name of its own: the id


def test_a_filter_label_defaults_to_its_name_and_options_sql_stays_on_the_server():
    dashboard = _v2(
        "version: 2\nname: ' Spaced '\nfilters:\n  - {name: who, kind: dropdown, options_sql: SELECT 1}\n"
    )

    assert dashboard.name == "Spaced"
    assert dashboard.filters[0].options_sql == "SELECT 1"
    assert dashboard.model_dump(mode="json")["filters"] == [
        {"name": "who", "kind": "dropdown", "label": "who"}
    ]


def test_an_unknown_panel_kind_is_kept_with_its_problem():
    dashboard = _v2("version: 2\npanels:\n  - {kind: heatmap, title: H, query: SELECT 1}\n")

    assert dashboard.panels[0].problem.startswith("panel kind `heatmap` is not supported")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("name: [unclosed\n", "/"),
        ("- just\n- a list\n", "/"),
        ("panels: 7\n", "/panels"),
        ("panels:\n  - {kind: bar, title: T}\n", "/panels/0/query"),
        ("panels:\n  - {kind: bar, query: SELECT 1, horizontal: sideways}\n", "/panels/0/horizontal"),
        ("filters:\n  - {name: 'no spaces', kind: dropdown}\n", "/filters/0/name"),
        ("filters:\n  - {name: p, kind: slider}\n", "/filters/0/kind"),
        ("filters:\n  - {name: p, kind: dropdown}\n  - {name: p, kind: date_range}\n", "/filters"),
        ("layout: {columns: 0}\n", "/layout/columns"),
    ],
    ids=[
        "yaml",
        "not-a-mapping",
        "panels",
        "no-query",
        "bool",
        "filter-name",
        "filter-kind",
        "twice",
        "layout",
    ],
)
def test_a_file_that_is_not_a_dashboard_is_invalid_with_the_path(text, path):
    with pytest.raises(InvalidDashboard) as refused:
        _v2(text)

    assert refused.value.code == "invalid_dashboard"
    assert refused.value.details[0]["path"] == path
