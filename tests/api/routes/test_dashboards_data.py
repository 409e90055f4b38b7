"""Dashboards that run: spec, data with filters and validation over tables written by real runs."""

import json

import pytest

from karet_defs.engine.run import run_pipeline
from karet_defs.templates import install_template

SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster
BASE = "/api/p/spending/dashboards"
CATEGORIES = {
    "BILLS": 3990.36,
    "GROCERIES": 518.26,
    "SHOPPING": 273.98,
    "TRANSPORT": 155.5,
    "OTHER": 65.5,
    "HEALTH": 57.3,
    "ENTERTAINMENT": 54.48,
    "FOOD": 53.85,
}
BROKEN_PANEL = """\
version: 2
name: Half broken
filters:
  - name: account
    kind: dropdown
    label: Account
    options_sql: SELECT DISTINCT account FROM transactions ORDER BY 1
panels:
  - kind: kpi
    title: Rows
    query: SELECT count(*) AS value FROM transactions WHERE ($account IS NULL OR account = $account)
  - kind: bar
    title: Broken
    query: SELECT nope AS label, 1 AS value FROM transactions
  - kind: table
    title: Latest
    query: SELECT date, amount FROM transactions ORDER BY date DESC, amount LIMIT 3
"""
# Karet's v1 shape: one table, a where, filters by column, panels aggregated by kind.
V1_DASHBOARD = {
    "id": "legacy",
    "name": "Legacy spending",
    "analytic_table_id": "transactions",
    "where": [
        {"kind": "gt", "left": {"kind": "col", "name": "amount"}, "right": {"kind": "num", "value": 0}}
    ],
    "filters": [
        {"kind": "dropdown", "column": "category", "label": "Category"},
        {"kind": "date_range", "column": "date", "label": "When"},
    ],
    "panels": [
        {"kind": "kpi", "title": "Spent", "column": "amount", "agg": "sum", "format": "currency"},
        {"kind": "bar", "title": "Top", "group_by": "merchant", "value": "amount", "agg": "sum", "limit": 2},
        {"kind": "line", "title": "Monthly", "x": "date", "x_bin": "month", "y": "amount", "agg": "sum"},
        {"kind": "table", "title": "Rows", "columns": ["date", "merchant"], "page_size": 5},
        {"kind": "symbol_map", "title": "Where", "lat": "lat", "lon": "lon"},
    ],
    "layout": {"columns": 3, "gap": "24px"},
}


@pytest.fixture
def spending(any_api_client):
    """The Spending template, run once, on the local store and then on S3."""
    stores = any_api_client.app.state.stores
    install_template(stores, "spending", "spending")
    run_pipeline(stores, "spending")
    return any_api_client


def _put(client, name: str, body: str | bytes) -> None:
    client.app.state.stores.pipelines.put(
        f"pipelines/spending/dashboards/{name}", body.encode() if isinstance(body, str) else body
    )


def _panels(response) -> dict[str, dict]:
    assert response.status_code == 200, response.text
    return {p["title"]: p for p in response.json()["panels"]}


def _rounded(rows, label="label", value="value"):
    return {r[label]: round(r[value], 2) for r in rows}


def test_spending_overview_answers_total_categories_and_top_merchants(spending):
    panels = _panels(spending.post(f"{BASE}/spending_overview/data", json={}))

    assert panels["Total spent"] == {
        "title": "Total spent",
        "kind": "kpi",
        "columns": ["value"],
        "rows": [{"value": pytest.approx(5169.23)}],
        "error": None,
    }
    assert _rounded(panels["Spending by category"]["rows"]) == CATEGORIES
    assert list(_rounded(panels["Spending by category"]["rows"])) == list(CATEGORIES)  # ORDER BY value DESC
    top = panels["Top merchants"]["rows"]
    assert len(top) == 10 and top[0]["value"] == 1850.0


def test_a_period_changes_what_the_filtered_panels_answer(spending):
    may = {"filters": {"period": {"from": "2026-05-01", "to": "2026-05-31"}}}
    april_on = {"filters": {"period": {"to": "2026-04-30"}}}

    in_may = _panels(spending.post(f"{BASE}/spending_overview/data", json=may))
    until_april = _panels(spending.post(f"{BASE}/spending_overview/data", json=april_on))

    assert in_may["Total spent"]["rows"] == [{"value": pytest.approx(2713.69)}]
    assert until_april["Total spent"]["rows"] == [{"value": pytest.approx(5169.23 - 2713.69)}]
    assert sum(_rounded(in_may["Spending by category"]["rows"]).values()) == pytest.approx(2713.69)
    # The merchants panel ignores the period: its query names no parameter.
    assert in_may["Top merchants"]["rows"] == until_april["Top merchants"]["rows"]


def test_cash_flow_answers_a_line_per_month_and_the_income_table(spending):
    panels = _panels(spending.post(f"{BASE}/cash_flow/data", json={"filters": {}}))

    # Three payroll deposits (7250) against 2455.54 spent in April; two (7000) against 2713.69 in May.
    assert [(r["x"], round(r["y"], 2)) for r in panels["Net cash flow per month"]["rows"]] == [
        ("2026-04-01", 4794.46),
        ("2026-05-01", 4286.31),
    ]
    income = panels["Income"]
    assert income["columns"] == ["date", "description", "amount", "account"]
    assert [r["amount"] for r in income["rows"]] == [3500.0, 3500.0, 250.0, 3500.0, 3500.0]


def test_one_broken_panel_reports_its_error_while_the_others_answer(spending):
    _put(spending, "half.yaml", BROKEN_PANEL)

    response = spending.post(f"{BASE}/half/data", json={"filters": {"account": "visa"}})

    panels = _panels(response)
    assert panels["Broken"]["rows"] == [] and "nope" in panels["Broken"]["error"]
    assert panels["Rows"]["error"] is None and panels["Rows"]["rows"][0]["value"] > 0
    assert len(panels["Latest"]["rows"]) == 3 and panels["Latest"]["columns"] == ["date", "amount"]
    assert response.json()["filters"] == {"account": ["cash", "chequing", "visa"]}


def test_a_dropdown_unset_matches_everything_and_set_narrows(spending):
    _put(spending, "half.yaml", BROKEN_PANEL)

    everything = _panels(spending.post(f"{BASE}/half/data", json={}))["Rows"]["rows"]
    counts = {
        account: _panels(spending.post(f"{BASE}/half/data", json={"filters": {"account": account}}))["Rows"][
            "rows"
        ][0]["value"]
        for account in ("cash", "chequing", "visa")
    }

    assert everything == [{"value": 35}]
    assert sum(counts.values()) == 35 and all(0 < n < 35 for n in counts.values())


def test_a_filter_value_of_the_wrong_shape_is_refused(spending):
    response = spending.post(f"{BASE}/spending_overview/data", json={"filters": {"period": "2026-05"}})

    assert (response.status_code, response.json()["error"]) == (422, "invalid_filter")
    assert response.json()["details"][0]["path"] == "/filters/period"


def test_a_v1_json_dashboard_runs_as_sql_panels(spending):
    _put(spending, "legacy.json", json.dumps(V1_DASHBOARD))

    panels = _panels(spending.post(f"{BASE}/legacy/data", json={"filters": {"category": "GROCERIES"}}))
    everything = _panels(spending.post(f"{BASE}/legacy/data", json={}))

    assert panels["Spent"]["rows"] == [{"value": pytest.approx(CATEGORIES["GROCERIES"])}]
    assert everything["Spent"]["rows"] == [{"value": pytest.approx(5169.23)}]
    assert [r["value"] for r in everything["Top"]["rows"]] == [1850.0, 1850.0]
    assert [r["x"] for r in everything["Monthly"]["rows"]] == ["2026-04-01", "2026-05-01"]
    assert everything["Rows"]["columns"] == ["date", "merchant"] and len(everything["Rows"]["rows"]) == 30
    assert everything["Where"]["error"].startswith("panel kind `symbol_map` is not supported")
    in_may = {"filters": {"date": {"from": "2026-05-01", "to": "2026-05-31"}}}
    assert _panels(spending.post(f"{BASE}/legacy/data", json=in_may))["Spent"]["rows"] == [
        {"value": pytest.approx(2713.69)}
    ]


def test_the_spec_is_one_shape_for_v1_and_v2_with_a_chart_per_panel(spending):
    _put(spending, "legacy.json", json.dumps(V1_DASHBOARD))

    v2 = spending.get(f"{BASE}/spending_overview/spec").json()
    v1 = spending.get(f"{BASE}/legacy/spec").json()

    assert v2["dashboard"]["filters"] == [{"name": "period", "kind": "date_range", "label": "Period"}]
    assert [p["kind"] for p in v2["dashboard"]["panels"]] == ["kpi", "doughnut", "bar"]
    assert v2["dashboard"]["panels"][2]["horizontal"] is True
    assert [c["data"] for c in v2["charts"]] == [{"name": "rows"}] * 3
    assert (v1["dashboard"]["version"], v1["dashboard"]["name"]) == (1, "Legacy spending")
    assert v1["dashboard"]["filters"] == [
        {"name": "category", "kind": "dropdown", "label": "Category"},
        {"name": "date", "kind": "date_range", "label": "When"},
    ]
    assert v1["dashboard"]["layout"] == {"columns": 3, "gap": 24}
    assert set(v1["dashboard"]["panels"][0]) == set(v2["dashboard"]["panels"][0])
    assert v1["charts"][3] is None  # tables are not charted
    assert v1["dashboard"]["panels"][3]["page_size"] == 5


def test_validate_finds_a_bad_column_and_a_chart_column_the_query_lacks(spending):
    _put(spending, "half.yaml", BROKEN_PANEL.replace("count(*) AS value", "count(*) AS n"))

    response = spending.post(f"{BASE}/half/validate")

    assert response.status_code == 200
    verdict = response.json()
    assert verdict["ok"] is False
    by_path = {e["path"]: e for e in verdict["errors"]}
    assert set(by_path) == {"/panels/0/value", "/panels/1/query"}
    assert by_path["/panels/0/value"]["kind"] == "missing_column"
    assert (
        by_path["/panels/1/query"]["kind"] == "query_error"
        and "nope" in by_path["/panels/1/query"]["message"]
    )


def test_validate_passes_the_template_dashboards(spending):
    for name in ("spending_overview", "cash_flow"):
        assert spending.post(f"{BASE}/{name}/validate").json() == {"ok": True, "errors": []}


def test_a_dashboard_that_does_not_parse_is_422_with_paths_and_a_failing_verdict(spending):
    _put(spending, "bad.yaml", "version: 2\npanels:\n  - kind: bar\n    title: No query\n")

    data = spending.post(f"{BASE}/bad/data", json={})
    spec = spending.get(f"{BASE}/bad/spec")
    verdict = spending.post(f"{BASE}/bad/validate")

    assert (data.status_code, data.json()["error"]) == (422, "invalid_dashboard")
    assert data.json()["details"] == [
        {"kind": "missing_field", "message": "panel 0 (`No query`) has no query", "path": "/panels/0/query"}
    ]
    assert spec.status_code == 422
    assert verdict.status_code == 200 and verdict.json()["ok"] is False
    assert verdict.json()["errors"][0]["path"] == "/panels/0/query"


@pytest.mark.parametrize("route", ["data", "validate"])
def test_a_missing_dashboard_is_404(spending, route):
    response = spending.post(f"{BASE}/ghost/{route}", json={})

    assert (response.status_code, response.json()["error"]) == (404, "dashboard_not_found")


def test_spec_of_a_missing_dashboard_is_404(spending):
    response = spending.get(f"{BASE}/ghost/spec")

    assert (response.status_code, response.json()["error"]) == (404, "dashboard_not_found")
