"""Dashboards through HTTP: listing with names, JSON ones as JSON, YAML ones as YAML text."""

import json

import pytest

from karet_defs.templates import template_files

SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster


@pytest.fixture
def client(any_api_client):
    response = any_api_client.post("/api/pipelines", json={"slug": "spend", "template": "spending"})
    assert response.status_code == 200
    pipelines = any_api_client.app.state.stores.pipelines
    folder = "pipelines/spend/dashboards/"
    pipelines.put(f"{folder}abc_legacy.json", json.dumps({"id": "legacy", "name": "  Budget  "}).encode())
    pipelines.put(f"{folder}unnamed.yml", b"version: 2\npanels: []\n")
    pipelines.put(f"{folder}broken.yaml", b"name: [unclosed\n")
    pipelines.put(f"{folder}drafts/cash_flow.yaml", b"name: Draft\n")  # nested: not a dashboard
    pipelines.put(f"{folder}notes.txt", b"not a dashboard")
    return any_api_client


def test_list_names_top_level_dashboards_sorted_by_name(client):
    response = client.get("/api/p/spend/dashboards")

    assert response.status_code == 200
    assert response.json() == {
        "dashboards": ["abc_legacy", "broken", "cash_flow", "spending_overview", "unnamed"],
        "listings": [
            {"id": "broken", "name": "broken"},
            {"id": "abc_legacy", "name": "Budget"},
            {"id": "cash_flow", "name": "Cash flow"},
            {"id": "spending_overview", "name": "Spending overview"},
            {"id": "unnamed", "name": "unnamed"},
        ],
    }


def test_list_of_a_pipeline_without_dashboards_is_empty(any_api_client):
    response = any_api_client.get("/api/p/nothing/dashboards")
    assert (response.status_code, response.json()) == (200, {"dashboards": [], "listings": []})


def test_a_json_dashboard_comes_back_as_json(client):
    response = client.get("/api/p/spend/dashboards/abc_legacy")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"id": "legacy", "name": "  Budget  "}


def test_a_yaml_dashboard_comes_back_as_yaml_text(client):
    response = client.get("/api/p/spend/dashboards/cash_flow")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.content == template_files("spending")["dashboards/cash_flow.yaml"]


@pytest.mark.parametrize(
    ("segment", "name"),
    [("missing", "missing"), ("notes", "notes"), (".hidden", ".hidden"), ("%2E%2E", ".."), ("a..b", "a..b")],
)
def test_an_unknown_or_unsafe_dashboard_is_not_found(client, segment, name):
    response = client.get(f"/api/p/spend/dashboards/{segment}")

    assert response.status_code == 404
    assert {k: response.json()[k] for k in ("error", "name")} == {
        "error": "dashboard_not_found",
        "name": name,
    }
