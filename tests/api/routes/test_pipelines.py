"""Pipelines CRUD through the HTTP client, on the local store and on S3."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from karet_defs.engine.run import run_pipeline
from karet_defs.errors import StoreError
from karet_defs.store.base import Stores
from karet_defs.templates import template_files
from tests.factories import SPENDING_CSV, put_raw, stored_objects, table_version

SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster


def _stores(client) -> Stores:
    return client.app.state.stores


def _objects(client) -> dict[str, bytes]:
    return stored_objects(_stores(client))


def _error(response) -> tuple[int, str, str | None]:
    """Status, error code and the `pipeline` field Karet clients read."""
    body = response.json()
    return response.status_code, body["error"], body.get("pipeline")


def _create(client, slug: str, template: str = "blank") -> None:
    response = client.post("/api/pipelines", json={"slug": slug, "template": template})
    assert response.status_code == 200, response.text


def test_list_is_empty_then_names_every_pipeline_in_key_order(any_api_client):
    assert any_api_client.get("/api/pipelines").json() == {"pipelines": []}
    _create(any_api_client, "zeta")
    _create(any_api_client, "alpha", "spending")

    assert any_api_client.get("/api/pipelines").json() == {"pipelines": ["alpha", "zeta"]}


def test_create_writes_the_template_in_the_buckets_by_extension(any_api_client):
    response = any_api_client.post("/api/pipelines", json={"slug": "  My Spending ", "template": "spending"})

    assert (response.status_code, response.json()) == (200, {"ok": True, "pipeline": "my-spending"})
    stores = _stores(any_api_client)
    for relative, content in template_files("spending").items():
        bucket = stores.lake if relative.endswith(".csv") else stores.pipelines
        assert bucket.get(f"pipelines/my-spending/{relative}") == content


@pytest.mark.parametrize("slug", ["", "   ", "../", "日本語", "!!!", "a" * 64], ids=repr)
def test_create_refuses_an_invalid_slug(any_api_client, slug):
    response = any_api_client.post("/api/pipelines", json={"slug": slug, "template": "blank"})

    assert (response.status_code, response.json()["error"]) == (422, "invalid_slug")
    assert _objects(any_api_client) == {}


def test_create_refuses_an_unknown_template(any_api_client):
    response = any_api_client.post("/api/pipelines", json={"slug": "p", "template": "fancy"})

    assert (response.status_code, response.json()["error"]) == (422, "invalid_template")
    assert _objects(any_api_client) == {}


def test_create_refuses_an_existing_slug(any_api_client):
    _create(any_api_client, "taken", "spending")
    before = _objects(any_api_client)

    response = any_api_client.post("/api/pipelines", json={"slug": "Taken", "template": "blank"})

    assert _error(response) == (409, "already_exists", "taken")
    assert _objects(any_api_client) == before


def test_concurrent_creates_of_one_slug_have_exactly_one_winner(any_api_client):
    def create(i: int) -> int:
        template = "spending" if i % 2 else "blank"
        return any_api_client.post("/api/pipelines", json={"slug": "race", "template": template}).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(create, range(20)))

    assert statuses == [200] + [409] * 19
    assert any_api_client.get("/api/pipelines").json() == {"pipelines": ["race"]}


def test_delete_removes_every_object_of_the_pipeline(any_api_client):
    _create(any_api_client, "gone", "spending")
    _create(any_api_client, "kept")
    stores = _stores(any_api_client)
    stores.warehouse.put("pipelines/gone/clean/transactions/x.parquet", b"PAR1")
    count = sum(1 for key in _objects(any_api_client) if ":pipelines/gone/" in key)

    response = any_api_client.delete("/api/pipelines/gone")

    assert (response.status_code, response.json()) == (
        200,
        {"ok": True, "pipeline": "gone", "deleted": count},
    )
    assert [key for key in _objects(any_api_client) if ":pipelines/gone/" in key] == []
    assert any_api_client.get("/api/pipelines").json() == {"pipelines": ["kept"]}


def test_delete_of_nothing_is_not_found(any_api_client):
    response = any_api_client.delete("/api/pipelines/ghost")

    assert _error(response) == (404, "not_found", "ghost")


def test_delete_refuses_an_invalid_slug(api_client):
    response = api_client.delete("/api/pipelines/%20--%20")
    assert (response.status_code, response.json()["error"]) == (422, "invalid_slug")


def _absolute_config(slug: str) -> bytes:
    config = json.loads(template_files("spending")["pipeline.json"])
    config["source_containers"][0]["path_prefix"] = f"pipelines/{slug}/transactions/"
    config["source_containers"].append(
        {**config["source_containers"][0], "id": "shared", "path_prefix": "pipelines/other/shared/"}
    )
    return json.dumps(config, indent=2).encode()


def test_rename_moves_every_object_and_rewrites_prefixes(any_api_client):
    _create(any_api_client, "old", "spending")
    stores = _stores(any_api_client)
    stores.pipelines.put("pipelines/old/pipeline.json", _absolute_config("old"))
    stores.warehouse.put("pipelines/old/clean/transactions/year=2026/month=4/m.parquet", b"PAR1data")
    before = {k.replace(":pipelines/old/", ":pipelines/new/"): v for k, v in _objects(any_api_client).items()}

    response = any_api_client.patch("/api/pipelines/old", json={"newSlug": "New"})

    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "from": "old", "to": "new", "moved": len(before)}
    after = _objects(any_api_client)
    assert set(after) == set(before)
    config_key = next(k for k in after if k.endswith("pipelines/new/pipeline.json"))
    assert {k: v for k, v in after.items() if k != config_key} == {
        k: v for k, v in before.items() if k != config_key
    }
    prefixes = [s["path_prefix"] for s in json.loads(after[config_key])["source_containers"]]
    assert prefixes == ["pipelines/new/transactions/", "pipelines/other/shared/"]
    assert any_api_client.get("/api/pipelines").json() == {"pipelines": ["new"]}


def test_rename_to_the_same_slug_is_unchanged(any_api_client):
    _create(any_api_client, "same")

    response = any_api_client.patch("/api/pipelines/same", json={"newSlug": " SAME "})

    assert response.status_code == 422
    assert response.json()["error"] == "unchanged"
    assert response.json()["message"] == "new slug equals old slug"


def test_rename_refuses_an_invalid_new_slug(any_api_client):
    _create(any_api_client, "p")

    response = any_api_client.patch("/api/pipelines/p", json={"newSlug": "../"})

    assert (response.status_code, response.json()["error"]) == (422, "invalid_slug")


def test_rename_of_nothing_is_not_found(any_api_client):
    response = any_api_client.patch("/api/pipelines/ghost", json={"newSlug": "spirit"})

    assert _error(response) == (404, "not_found", "ghost")


def test_rename_onto_an_existing_pipeline_conflicts_before_touching_data(any_api_client):
    _create(any_api_client, "a", "spending")
    _create(any_api_client, "b")
    before = _objects(any_api_client)

    response = any_api_client.patch("/api/pipelines/a", json={"newSlug": "b"})

    assert _error(response) == (409, "already_exists", "b")
    assert _objects(any_api_client) == before


@pytest.mark.parametrize(("method", "fail_after"), [("put_file", 1), ("put", 0)], ids=["copy", "config"])
def test_a_failed_rename_keeps_the_original(any_api_client, monkeypatch, method, fail_after):
    _create(any_api_client, "orig", "spending")
    before = _objects(any_api_client)
    stores = _stores(any_api_client)
    real = getattr(stores.pipelines, method)
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args[0])
        if len(calls) > fail_after:
            raise StoreError("injected failure")
        return real(*args, **kwargs)

    for store in {id(s): s for s in (stores.pipelines, stores.lake, stores.warehouse)}.values():
        monkeypatch.setattr(store, method, flaky)

    response = any_api_client.patch("/api/pipelines/orig", json={"newSlug": "moved"})

    assert (response.status_code, response.json()["error"]) == (503, "s3_error")
    assert _objects(any_api_client) == before
    assert any_api_client.get("/api/pipelines").json() == {"pipelines": ["orig"]}


def test_a_renamed_pipeline_keeps_its_tables_at_their_versions(any_api_client):
    _create(any_api_client, "old", "spending")
    stores = _stores(any_api_client)
    run_pipeline(stores, "old")
    put_raw(stores, "pipelines/old/transactions/may.csv", SPENDING_CSV)
    run_pipeline(stores, "old")
    url = "/api/p/{}/tables/transactions/rows?version={}"
    before = [any_api_client.get(url.format("old", v)).json()["rows"] for v in (0, 1)]

    assert any_api_client.patch("/api/pipelines/old", json={"newSlug": "new"}).status_code == 200

    assert table_version(stores, "new", "transactions") == 1
    assert [any_api_client.get(url.format("new", v)).json()["rows"] for v in (0, 1)] == before
    assert table_version(stores, "old", "transactions") is None
