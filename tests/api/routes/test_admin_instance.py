"""The whole instance: export → reset → import leaves every object, row, table version, user and job record
as it was; reset needs the instance's name; import refuses a non-empty instance and a newer format."""

import io
import json
import zipfile

import pytest

from karet_api.services.auth import cookies
from karet_defs.orchestration.launch import execute_pipeline_run
from karet_defs.templates import install_template
from tests.factories import data_dir_snapshot, make_user

PASSWORD = "correct horse"


@pytest.fixture
def client(make_client, local_settings, dagster_instance):
    client = make_client(local_settings)
    stores = client.app.state.stores
    install_template(stores, "spending", "spending")
    for _ in range(2):  # two runs: two table versions and two job records
        assert execute_pipeline_run(dagster_instance, "spending", trigger="api").success
    client.post("/api/p/spending/queries", json={"name": "Big spends", "sql": "SELECT * FROM transactions"})
    assert client.post("/api/auth/setup", json={"password": PASSWORD}).status_code == 200
    client.cookies.clear()
    make_user(client, "alice", "engineer")
    return client


def stored(settings):
    """Every stored object but the audit log, which records the export, reset and import themselves."""
    snapshot = data_dir_snapshot(settings.data_dir)
    return {key: digest for key, digest in snapshot.items() if not key.startswith("_auth/audit/")}


def observed(client):
    """What a user of the instance sees: jobs, rows, versions, queries and users."""
    return {
        "jobs": client.get("/api/p/spending/jobs").json(),
        "rows": client.get("/api/p/spending/tables/transactions/rows").json(),
        "versions": client.get("/api/p/spending/tables/transactions/versions").json(),
        "queries": client.get("/api/p/spending/queries").json(),
        "users": client.get("/api/admin/users").json(),
    }


def test_export_reset_import_round_trip(client, local_settings, dagster_instance):
    before_objects = stored(local_settings)
    before = observed(client)
    assert len(before["jobs"]["jobs"]) == 2 and before["rows"]["rows"]

    exported = client.get("/api/admin/export")
    assert exported.status_code == 200
    archive = exported.content
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        names = opened.namelist()
        assert json.loads(opened.read("karet-instance.json"))["format_version"] == 1
    assert sum(name.startswith("runs/") for name in names) == 2
    assert "objects/pipelines/_auth/users/alice.json" in names

    wrong = client.post("/api/admin/reset", json={"confirm": "not-the-name"})
    assert (wrong.status_code, wrong.json()["error"]) == (422, "confirm_mismatch")
    assert stored(local_settings) == before_objects

    reset = client.post("/api/admin/reset", json={"confirm": "karet"})

    assert reset.status_code == 200 and reset.json()["deleted_objects"] > 10
    assert client.get("/api/auth/setup").json() == {"needsSetup": True}
    assert client.get("/api/pipelines").json()["pipelines"] == []
    assert dagster_instance.get_runs_count() == 0
    assert [e["event"] for e in client.get("/api/admin/audit").json()["events"]] == ["reset"]

    imported = client.post("/api/admin/import", content=archive, headers={"Content-Type": "application/zip"})

    assert imported.status_code == 200, imported.text
    assert imported.json()["runs"] == 2
    assert stored(local_settings) == before_objects
    assert observed(client) == before
    client.headers.pop("X-API-Key")
    assert client.post("/api/auth/login", json={"password": PASSWORD}).status_code == 200


def test_reset_ends_the_sessions_signed_before_it(client):
    session = client.post("/api/auth/login", json={"password": PASSWORD}, headers={"X-API-Key": ""})
    cookie = session.cookies[cookies.SESSION_COOKIE]
    assert client.post("/api/admin/reset", json={"confirm": "karet"}).status_code == 200

    client.cookies.set(cookies.SESSION_COOKIE, cookie)
    assert client.get("/api/pipelines", headers={"X-API-Key": ""}).status_code == 401


def test_import_refuses_a_non_empty_instance_and_a_newer_format(client):
    archive = client.get("/api/admin/export").content
    refused = client.post("/api/admin/import", content=archive)
    assert (refused.status_code, refused.json()["error"]) == (409, "instance_not_empty")

    client.post("/api/admin/reset", json={"confirm": "karet"})
    newer = io.BytesIO()
    with zipfile.ZipFile(newer, "w") as out:
        out.writestr("karet-instance.json", json.dumps({"format_version": 2}))
    response = client.post("/api/admin/import", content=newer.getvalue())
    assert (response.status_code, response.json()["error"]) == (422, "unsupported_format_version")

    unsafe = io.BytesIO()
    with zipfile.ZipFile(unsafe, "w") as out:
        out.writestr("karet-instance.json", json.dumps({"format_version": 1}))
        out.writestr("objects/pipelines/../escape", b"x")
    response = client.post("/api/admin/import", content=unsafe.getvalue())
    assert (response.status_code, response.json()["error"]) == (422, "invalid_entry_path")
    assert client.get("/api/pipelines").json()["pipelines"] == []
