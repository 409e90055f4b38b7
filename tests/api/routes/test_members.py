"""Pipeline visibility (Karet E4): a pipeline its owner made private is missing from other users' lists and
answers 404 under every route, SQL included, until they are made members; leads and admins see all."""

import pytest

from karet_api.services.accounts import visibility
from karet_api.services.accounts.identity import Actor
from karet_api.services.accounts.users import Role
from tests.factories import make_user, token_pair_for

SHARES_DAGSTER_INSTANCE = True


@pytest.fixture
def client(api_client):
    for name, role in [("owen", "engineer"), ("ed", "engineer"), ("amy", "auditor"), ("lou", "lead")]:
        make_user(api_client, name, role)
    return api_client


def as_user(client, name):
    return {"Authorization": f"Bearer {token_pair_for(client, name).access_token}", "X-API-Key": ""}


HIDDEN_ROUTES = [
    ("GET", "/api/p/private/config"),
    ("GET", "/api/p/private/tables"),
    ("GET", "/api/p/private/jobs"),
    ("GET", "/api/p/private/dashboards"),
    ("GET", "/api/p/private/queries"),
    ("GET", "/api/p/private/members"),
    ("GET", "/api/p/private/export"),
    ("GET", "/api/p/private/config/versions"),
    ("POST", "/api/p/private/query"),
    ("POST", "/api/p/private/jobs"),
    ("PUT", "/api/p/private/config"),
    ("DELETE", "/api/pipelines/private"),
    ("PATCH", "/api/pipelines/private"),
    ("GET", "/api/p/PRIVATE/config"),  # the slug is sanitised before the check
]


def test_a_private_pipeline_is_hidden_from_everyone_but_its_owner_and_leads(client):
    assert client.post("/api/pipelines", json={"slug": "shared"}).status_code == 200  # the service: shared
    owen, ed, amy, lou = (as_user(client, n) for n in ("owen", "ed", "amy", "lou"))
    assert client.post("/api/pipelines", json={"slug": "private"}, headers=owen).status_code == 200

    assert client.get("/api/pipelines", headers=owen).json()["pipelines"] == ["private", "shared"]
    assert client.get("/api/pipelines", headers=lou).json()["pipelines"] == ["private", "shared"]
    for outsider in (ed, amy):
        assert client.get("/api/pipelines", headers=outsider).json()["pipelines"] == ["shared"]
        for method, url in HIDDEN_ROUTES:
            body = {"sql": "SELECT 1"} if url.endswith("/query") else {}
            response = client.request(method, url, json=body, headers=outsider)
            assert response.status_code == 404, (method, url, response.text)
        sql = client.post(
            "/v1/api/sql", json={"sql": "SELECT 1", "namespace_id": "private"}, headers=outsider
        )
        assert (sql.status_code, sql.json()["error"]["code"]) == (404, "TABLE_NOT_FOUND")
    assert client.get("/api/p/private/config", headers=owen).status_code == 200
    assert client.get("/api/p/private/config", headers=lou).status_code == 200
    assert client.get("/api/p/shared/config", headers=amy).status_code == 200


def test_members_are_managed_by_the_owner_and_leads(client):
    owen, ed, amy, lou = (as_user(client, n) for n in ("owen", "ed", "amy", "lou"))
    client.post("/api/pipelines", json={"slug": "private"}, headers=owen)
    assert client.get("/api/p/private/members", headers=owen).json() == {
        "owner": "owen",
        "members": [],
        "shared": False,
    }

    added = client.put("/api/p/private/members", json={"members": ["ed", "amy"]}, headers=owen)

    assert added.json() == {"owner": "owen", "members": ["amy", "ed"], "shared": False}
    assert client.get("/api/p/private/config", headers=amy).status_code == 200
    assert client.post("/api/p/private/query", json={"sql": "SELECT 1"}, headers=amy).status_code != 404
    refused = client.put("/api/p/private/members", json={"members": []}, headers=ed)
    assert (refused.status_code, refused.json()["error"]) == (403, "not_owner")
    unknown = client.put("/api/p/private/members", json={"members": ["ghost"]}, headers=owen)
    assert (unknown.status_code, unknown.json()["error"]) == (422, "unknown_user")
    assert client.delete("/api/p/private/members", headers=owen).status_code == 403  # sharing needs a lead

    assert client.delete("/api/p/private/members", headers=lou).json()["shared"] is True
    assert client.put("/api/p/private/members", json={"members": []}, headers=lou).json()["owner"] == "lou"
    handed = client.put("/api/p/private/members", json={"members": [], "owner": "owen"}, headers=lou)
    assert handed.json()["owner"] == "owen"
    assert client.get("/api/p/private/config", headers=amy).status_code == 404


def test_an_imported_or_renamed_pipeline_keeps_to_its_owner(client):
    owen, ed = as_user(client, "owen"), as_user(client, "ed")
    client.post("/api/pipelines", json={"slug": "private"}, headers=owen)
    archive = client.get("/api/p/private/export", headers=owen).content

    imported = client.post("/api/pipelines/import?name=copy", content=archive, headers=ed)
    renamed = client.patch("/api/pipelines/private", json={"newSlug": "moved"}, headers=owen)

    assert imported.status_code == 200 and renamed.status_code == 200
    assert client.get("/api/pipelines", headers=ed).json()["pipelines"] == ["copy"]
    assert client.get("/api/pipelines", headers=owen).json()["pipelines"] == ["moved"]


def test_visible_slugs_and_can_see_for_other_readers(client):
    client.post("/api/pipelines", json={"slug": "private"}, headers=as_user(client, "owen"))
    client.post("/api/pipelines", json={"slug": "shared"})
    stores = client.app.state.stores
    ed = Actor("ed", Role.engineer)

    assert visibility.visible_slugs(stores, ed) == ["shared"]
    assert visibility.visible_slugs(stores, Actor("owen", Role.auditor)) == ["private", "shared"]
    assert visibility.can_see(stores, Actor("x", Role.lead), "private")
    assert visibility.can_see(stores, ed, "no-such-pipeline")  # its own 404 says so
