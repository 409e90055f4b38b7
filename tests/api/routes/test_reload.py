"""The running Dagster webserver is asked to reload only when the graph's structure changes."""

import json

import pytest

from karet_defs.templates import template_files


class CountingReloader:
    def __init__(self) -> None:
        self.requests = 0

    def request(self) -> None:
        self.requests += 1


@pytest.fixture
def reloads(api_client) -> CountingReloader:
    counter = CountingReloader()
    api_client.app.state.reloader = counter
    return counter


def _config() -> dict:
    return json.loads(template_files("spending")["pipeline.json"])


def test_create_rename_import_delete_each_reload(api_client, reloads):
    assert api_client.post("/api/pipelines", json={"slug": "a", "template": "spending"}).status_code == 200
    assert api_client.patch("/api/pipelines/a", json={"newSlug": "b"}).status_code == 200
    exported = api_client.get("/api/p/b/export").content
    assert api_client.post("/api/pipelines/import?name=c", content=exported).status_code == 200
    assert api_client.delete("/api/pipelines/c").status_code == 200
    assert reloads.requests == 4


def test_config_put_reloads_on_structure_change_only(api_client, reloads):
    api_client.post("/api/pipelines", json={"slug": "a", "template": "spending"})
    reloads.requests = 0
    config = _config()

    config["lookup_mappings"][0]["rows"][0]["input_patterns"].append("BONUS")
    assert api_client.put("/api/p/a/config", json=config).status_code == 200
    assert reloads.requests == 0

    config["analytic_tables"].append({"id": "extra", "name": "Extra", "schema": []})
    assert api_client.put("/api/p/a/config", json=config).status_code == 200
    assert reloads.requests == 1

    refused = api_client.put("/api/p/a/config", content=b'{"version": 1}')
    drafted = api_client.put("/api/p/a/config?draft=true", content=b'{"version": 1}')
    assert (refused.status_code, drafted.status_code, reloads.requests) == (422, 200, 1)

    config["analytic_tables"].pop()
    assert api_client.put("/api/p/a/config", json=config).status_code == 200
    assert reloads.requests == 2
