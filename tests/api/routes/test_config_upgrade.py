"""`POST /api/p/<slug>/config/upgrade`: the lookups → dimensions upgrade as a preview, then saved as the next
config version; the upgraded pipeline runs with the rows its lookups gave."""

import json

from karet_defs.engine.run import run_pipeline
from karet_defs.store.factory import build_stores
from tests.factories import read_table

SHARES_DAGSTER_INSTANCE = True  # the preview and the save never touch Dagster


def test_preview_changes_nothing_and_save_records_a_version(api_client, local_settings, tmp_path):
    assert (
        api_client.post("/api/pipelines", json={"slug": "spend", "template": "spending"}).status_code == 200
    )
    stores = build_stores(local_settings)
    run_pipeline(stores, "spend")
    before = read_table(stores, "spend", "transactions", tmp_path)
    stored = api_client.get("/api/p/spend/config").content

    preview = api_client.post("/api/p/spend/config/upgrade")

    assert preview.status_code == 200
    body = preview.json()
    assert body["changed"] is True and body["notes"] == [] and "saved" not in body
    assert "lookup_mappings" not in body["config"]
    assert {d["id"] for d in body["config"]["dimensions"]} == {"categories", "merchants"}
    assert api_client.get("/api/p/spend/config").content == stored

    saved = api_client.post("/api/p/spend/config/upgrade?save=true")

    assert saved.status_code == 200
    assert saved.json()["saved"]["version"] == int(saved.headers["x-karet-config-version"])
    assert json.loads(api_client.get("/api/p/spend/config").content) == body["config"]
    again = api_client.post("/api/p/spend/config/upgrade").json()
    assert again["changed"] is False and again["config"] == body["config"]

    run_pipeline(stores, "spend", clean_run=True)
    after = read_table(stores, "spend", "transactions", tmp_path)
    assert before.sort(before.columns).equals(after.sort(after.columns))


def test_upgrade_of_a_missing_pipeline_is_not_found(api_client):
    response = api_client.post("/api/p/nothing/config/upgrade")
    assert (response.status_code, response.json()["error"]) == (404, "pipeline_config_not_found")
