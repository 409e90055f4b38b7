"""Config history, promotion and approvals through HTTP, on the real app (local store, and S3 where it
matters): versions, diff, revert, stale saves, environments, races with one winner, roles, portability."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from karet_api.roles import Actor, Role, current_actor
from karet_defs.store import keys
from karet_defs.templates import template_files
from tests.factories import SANDBOX_RAW, put_raw, sandbox_config, table_version

BLANK = template_files("blank")["pipeline.json"]


def _config(**extra) -> bytes:
    return json.dumps({**json.loads(BLANK), **extra}).encode()


@pytest.fixture
def client(any_api_client):
    assert any_api_client.post("/api/pipelines", json={"slug": "cfg", "template": "blank"}).status_code == 200
    return any_api_client


def _versions(client, slug="cfg"):
    return client.get(f"/api/p/{slug}/config/versions").json()


def _stored_config(client, slug="cfg") -> bytes:
    return client.app.state.stores.pipelines.get(keys.config_key(slug))


def test_every_save_is_listed_newest_first_with_author_note_and_environment(client):
    assert client.get("/api/p/cfg/config").headers["x-karet-config-version"] == "1"

    saved = client.put(
        "/api/p/cfg/config", content=_config(layout={"a": 1}), headers={"X-Karet-Note": "tidy%20up"}
    )

    assert (saved.status_code, saved.headers["x-karet-config-version"]) == (200, "2")
    listing = _versions(client)
    assert (listing["promotion"], listing["live_version"]) == ("direct", 2)
    assert [(v["version"], v["author"], v["note"], v["environment"]) for v in listing["versions"]] == [
        (2, "api", "tidy up", "production"),
        (1, "api", "created from the blank template", "retired"),
    ]
    one = client.get("/api/p/cfg/config/versions/1").json()
    assert (one["version"], one["pipeline"]) == (1, json.loads(BLANK))
    missing = client.get("/api/p/cfg/config/versions/9")
    assert (missing.status_code, missing.json()["error"]) == (404, "config_version_not_found")


def test_a_stale_config_version_is_412_like_a_stale_etag_and_changes_nothing(client):
    first = client.get("/api/p/cfg/config")
    assert client.put("/api/p/cfg/config", content=_config(layout={"a": 1})).status_code == 200

    by_version = client.put(
        "/api/p/cfg/config",
        content=_config(layout={"b": 1}),
        headers={"X-Karet-Config-Version": first.headers["x-karet-config-version"]},
    )
    by_etag = client.put(
        "/api/p/cfg/config", content=_config(layout={"b": 1}), headers={"If-Match": first.headers["etag"]}
    )

    assert (by_version.status_code, by_version.json()["error"], by_version.json()["ok"]) == (
        412,
        "stale_config",
        False,
    )
    assert by_version.json()["current_version"] == 2
    assert (by_etag.status_code, by_etag.json()["error"]) == (412, "etag_mismatch")
    assert _stored_config(client) == _config(layout={"a": 1})
    assert [v["version"] for v in _versions(client)["versions"]] == [2, 1]


def test_of_concurrent_puts_carrying_one_version_exactly_one_succeeds(client):
    def put(i):
        return client.put(
            "/api/p/cfg/config", content=_config(layout={"i": i}), headers={"X-Karet-Config-Version": "1"}
        ).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(put, range(10)))

    assert sorted(codes) == [200] + [412] * 9
    assert [v["version"] for v in _versions(client)["versions"]] == [2, 1]


def test_diff_ignores_layout_and_revert_writes_the_version_forward(client):
    source = {"id": "s", "name": "S", "path_prefix": "raw/", "schema": [{"name": "a", "type": "string"}]}
    client.put("/api/p/cfg/config", content=_config(source_containers=[source], layout={"x": 1}))

    diff = client.get("/api/p/cfg/config/versions/1/diff")
    reverted = client.post("/api/p/cfg/config/versions/1/revert", json={"note": "undo"})

    assert diff.json() == [{"op": "remove", "path": "/source_containers/0"}]
    assert diff.headers["x-karet-config-version"] == "2"
    assert reverted.status_code == 200
    assert (reverted.json()["version"]["version"], reverted.json()["version"]["reverted_from"]) == (3, 1)
    assert reverted.headers["x-karet-config-version"] == "3"
    assert _stored_config(client) == BLANK
    assert client.get("/api/p/cfg/config/versions/1/diff").json() == []


def test_revert_of_a_version_that_no_longer_validates_is_refused_with_details(client):
    client.put("/api/p/cfg/config", content=_config(layout={"x": 1}))
    # Stands for a version saved under older, looser rules.
    invalid = _config(
        mappings=[{"id": "m", "source_container_id": "ghost", "analytic_table_id": "t", "columns": []}]
    )
    client.app.state.stores.pipelines.put(keys.version_key("cfg", 1), invalid)

    refused = client.post("/api/p/cfg/config/versions/1/revert")

    assert refused.status_code == 422
    assert refused.json()["details"] and all(
        {"kind", "message", "path"} <= set(d) for d in refused.json()["details"]
    )
    assert _stored_config(client) == _config(layout={"x": 1})
    assert [v["version"] for v in _versions(client)["versions"]] == [2, 1]


def test_history_survives_export_import_and_rename(api_client):
    api_client.post("/api/pipelines", json={"slug": "orig", "template": "blank"})
    api_client.put("/api/p/orig/config", content=_config(layout={"a": 1}), headers={"X-Karet-Note": "two"})
    before = [(v["version"], v["note"]) for v in _versions(api_client, "orig")["versions"]]

    exported = api_client.get("/api/p/orig/export").content
    assert api_client.post("/api/pipelines/import?name=copy", content=exported).status_code == 200
    assert api_client.patch("/api/pipelines/orig", json={"newSlug": "renamed"}).status_code == 200

    for slug in ("copy", "renamed"):
        listing = _versions(api_client, slug)
        assert [(v["version"], v["note"]) for v in listing["versions"]] == before
        assert listing["live_version"] == 2
        assert api_client.get(f"/api/p/{slug}/config").headers["x-karet-config-version"] == "2"


@pytest.fixture
def reviewed(api_client):
    """`rev` in reviewed mode with version 2 saved to development."""
    api_client.post("/api/pipelines", json={"slug": "rev", "template": "blank"})
    switched = api_client.patch("/api/pipelines/rev", json={"promotion": "reviewed"})
    assert switched.json() == {"ok": True, "pipeline": "rev", "promotion": "reviewed"}
    saved = api_client.put("/api/p/rev/config", content=_config(layout={"v": 2}))
    assert (saved.json()["version"], saved.json()["environment"]) == (2, "development")
    return api_client


def test_reviewed_saves_go_to_development_and_production_changes_only_by_promotion(reviewed):
    c = reviewed
    assert _stored_config(c, "rev") == BLANK
    assert c.get("/api/p/rev/config").headers["x-karet-config-version"] == "2"  # the editor builds on it

    to_qa = c.post("/api/p/rev/config/versions/2/promote")
    to_uat = c.post("/api/p/rev/config/versions/2/promote")
    assert (to_qa.status_code, to_qa.json()) == (
        200,
        {"status": "promoted", "environment": "qa", "approval_request_id": None},
    )
    assert (to_uat.status_code, to_uat.json()["status"], to_uat.json()["environment"]) == (
        202,
        "pending_approval",
        "qa",
    )
    request = to_uat.json()["approval_request_id"]

    pending = c.get("/api/notifications/pending-approvals").json()
    assert (pending["count"], pending["requests"][0]["id"], pending["requests"][0]["pipeline"]) == (
        1,
        request,
        "rev",
    )
    assert c.post(f"/api/approvals/{request}/comments", json={"content": "looks right"}).status_code == 201
    assert [m["content"] for m in c.get(f"/api/approvals/{request}/comments").json()["comments"]] == [
        "looks right"
    ]
    detail = c.get(f"/api/approvals/{request}").json()
    assert (detail["status"], detail["snapshot"]["version"], detail["snapshot"]["pipeline"]["layout"]) == (
        "pending",
        2,
        {"v": 2},
    )

    assert c.post(f"/api/approvals/{request}/approve", json={"reason": "ok"}).json()["environment"] == "uat"
    to_production = c.post("/api/p/rev/config/versions/2/promote").json()["approval_request_id"]
    no_reason = c.post(f"/api/approvals/{to_production}/reject", json={})
    assert (no_reason.status_code, no_reason.json()["error"]) == (422, "missing_fields")
    assert _stored_config(c, "rev") == BLANK
    assert c.post(f"/api/approvals/{to_production}/approve", json={"reason": "ship"}).json() == {
        "status": "approved",
        "environment": "production",
        "approval_request_id": to_production,
    }

    assert _stored_config(c, "rev") == _config(layout={"v": 2})
    assert {v["version"]: v["environment"] for v in _versions(c, "rev")["versions"]} == {
        2: "production",
        1: "retired",
    }
    assert [a["status"] for a in c.get("/api/approvals?status=approved").json()["approvals"]] == [
        "approved"
    ] * 2
    assert c.get("/api/notifications/pending-approvals").json() == {"count": 0, "requests": []}

    retired = c.post("/api/p/rev/config/versions/2/retire")
    assert retired.json() == {"status": "retired", "environment": "retired", "approval_request_id": None}
    assert _stored_config(c, "rev") == BLANK


def _race(*calls):
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_promotions_of_one_version_one_wins_and_the_other_gets_409(reviewed):
    # Both saw the version in development: whichever comes second must not move it a second step.
    seen = {"X-Karet-Environment": "development"}
    outcomes = _race(*[lambda: reviewed.post("/api/p/rev/config/versions/2/promote", headers=seen)] * 2)

    assert sorted(r.status_code for r in outcomes) == [200, 409]
    loser = next(r for r in outcomes if r.status_code == 409).json()
    assert loser["error"] == "concurrent_change" and "nothing was changed" in loser["message"]
    assert {v["version"]: v["environment"] for v in _versions(reviewed, "rev")["versions"]}[2] == "qa"


def test_an_approve_racing_a_reject_one_wins_and_the_other_gets_409(reviewed):
    reviewed.post("/api/p/rev/config/versions/2/promote")
    request = reviewed.post("/api/p/rev/config/versions/2/promote").json()["approval_request_id"]

    outcomes = _race(
        lambda: reviewed.post(f"/api/approvals/{request}/approve", json={"reason": "yes"}),
        lambda: reviewed.post(f"/api/approvals/{request}/reject", json={"reason": "no"}),
    )

    assert sorted(r.status_code for r in outcomes) == [200, 409]
    assert next(r for r in outcomes if r.status_code == 409).json()["error"] == "approval_decided"
    status = reviewed.get(f"/api/approvals/{request}").json()["status"]
    environment = {v["version"]: v["environment"] for v in _versions(reviewed, "rev")["versions"]}[2]
    assert (status, environment) in {("approved", "uat"), ("rejected", "qa")}


def test_a_role_below_the_routes_gets_403_and_nothing_changes(reviewed):
    reviewed.post("/api/p/rev/config/versions/2/promote")
    request = reviewed.post("/api/p/rev/config/versions/2/promote").json()["approval_request_id"]
    reviewed.app.dependency_overrides[current_actor] = lambda: Actor(name="eve", role=Role.engineer)
    try:
        approve = reviewed.post(f"/api/approvals/{request}/approve", json={"reason": "mine"})
        mode = reviewed.patch("/api/pipelines/rev", json={"promotion": "direct"})
    finally:
        reviewed.app.dependency_overrides.clear()

    assert (approve.status_code, approve.json()["error"]) == (403, "forbidden")
    assert mode.status_code == 403
    assert reviewed.get(f"/api/approvals/{request}").json()["status"] == "pending"
    assert _versions(reviewed, "rev")["promotion"] == "reviewed"


def test_a_version_exports_and_imports_as_a_portable_document(reviewed):
    exported = reviewed.get("/api/p/rev/config/versions/2/export").json()
    assert (exported["format_version"], exported["name"], exported["version"]) == (1, "rev", 2)
    assert exported["pipeline"] == json.loads(_config(layout={"v": 2}))

    created = reviewed.post("/api/pipelines/import-version?name=twin", json=exported)
    again = reviewed.post("/api/pipelines/import-version?name=twin", json=exported)
    newer = reviewed.post("/api/pipelines/import-version?name=other", json={**exported, "format_version": 2})

    assert (created.status_code, created.json()["created"], created.json()["version"]["environment"]) == (
        201,
        True,
        "production",
    )
    version = again.json()["version"]
    assert (again.json()["created"], version["version"], version["environment"]) == (False, 2, "development")
    assert (newer.status_code, newer.json()["error"]) == (422, "unsupported_format_version")
    assert reviewed.get("/api/p/other/config").status_code == 404


def test_a_run_is_tagged_with_its_config_version_and_the_job_shows_it(api_client, dagster_instance):
    created = api_client.post("/api/pipelines", json={"slug": "spending", "template": "spending"})
    assert created.status_code == 200
    config = json.loads(api_client.get("/api/p/spending/config").content)
    api_client.put("/api/p/spending/config", content=json.dumps({**config, "layout": {"n": 2}}))

    job = api_client.post("/api/p/spending/jobs").json()["job"]
    done = _finished(api_client, job["id"])

    assert (done["status"], done["config_version"]) == ("completed", 2)
    assert dagster_instance.get_run_by_id(job["id"]).tags["karet/config_version"] == "2"
    assert api_client.get("/api/p/spending/jobs").json()["jobs"][0]["config_version"] == 2
    event = dagster_instance.get_latest_materialization_event(dg.AssetKey(["spending", "transactions"]))
    assert event.asset_materialization.metadata["config_version"].value == 2

    # Reviewed: a development save changes nothing a run reads; the next run is still version 2.
    api_client.patch("/api/pipelines/spending", json={"promotion": "reviewed"})
    api_client.put("/api/p/spending/config", content=json.dumps({**config, "layout": {"n": 3}}))
    again = _finished(api_client, api_client.post("/api/p/spending/jobs").json()["job"]["id"])
    assert (again["status"], again["config_version"]) == ("completed", 2)


def _finished(client, job_id: str, slug: str = "spending") -> dict:
    deadline = time.monotonic() + 60
    while (job := client.get(f"/api/p/{slug}/jobs/{job_id}").json()["job"])["status"] not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


def test_a_sandbox_run_writes_a_qa_version_beside_production_and_its_approval_shows_the_impact(
    api_client, dagster_instance
):
    c, stores = api_client, api_client.app.state.stores
    c.post("/api/pipelines", json={"slug": "sb", "template": "blank"})
    put_raw(stores, "pipelines/sb/raw/a.csv", SANDBOX_RAW)
    c.put("/api/p/sb/config", content=json.dumps(sandbox_config(changed=False)))
    assert _finished(c, c.post("/api/p/sb/jobs").json()["job"]["id"], "sb")["status"] == "completed"
    c.patch("/api/pipelines/sb", json={"promotion": "reviewed"})
    assert c.put("/api/p/sb/config", content=json.dumps(sandbox_config(changed=True))).json()["version"] == 3

    in_development = c.post("/api/p/sb/config/versions/3/sandbox-run")
    c.post("/api/p/sb/config/versions/3/promote")
    not_yet = c.get("/api/p/sb/config/versions/3/impact")
    request = c.post("/api/p/sb/config/versions/3/promote").json()["approval_request_id"]
    assert c.get(f"/api/approvals/{request}").json()["impact"] is None
    production = {i.key: i.etag for i in stores.warehouse.list(keys.tables_prefix("sb"))}
    production_version = table_version(stores, "sb", "t")

    started = c.post("/api/p/sb/config/versions/3/sandbox-run")
    job = _finished(c, started.json()["job_id"], "sb")

    assert (in_development.status_code, in_development.json()["error"]) == (409, "invalid_environment")
    assert (not_yet.status_code, not_yet.json()["error"]) == (409, "no_sandbox_run")
    assert (started.status_code, started.json()["environment"], started.json()["version"]) == (202, "qa", 3)
    assert (job["status"], job["environment"], job["config_version"]) == ("completed", "qa", 3)
    tags = dagster_instance.get_run_by_id(job["id"]).tags
    assert (tags["karet/environment"], tags["karet/config_version"], tags["karet/pipeline"]) == (
        "qa",
        "3",
        "sb",
    )
    listed = c.get("/api/p/sb/jobs").json()["jobs"]
    assert [(j["environment"], j["config_version"]) for j in listed] == [("qa", 3), (None, 2)]
    assert {i.key: i.etag for i in stores.warehouse.list(keys.tables_prefix("sb"))} == production
    assert table_version(stores, "sb", "t") == production_version
    assert any(
        i.key.startswith("pipelines/sb/env/qa/clean/t/") for i in stores.warehouse.list("pipelines/sb/env/")
    )

    impact = c.get("/api/p/sb/config/versions/3/impact").json()
    (table,) = impact["tables"]
    assert (impact["environment"], impact["job_id"], impact["production_version"]) == ("qa", job["id"], 2)
    assert [(p["partition"], p["production"], p["sandbox"]) for p in table["partitions"]] == [
        ("month=2026-01", 2, 2),
        ("month=2026-02", 1, 1),
    ]
    assert table["schema_difference"]["added"] == [{"name": "note", "type": "VARCHAR"}]
    assert [(r["side"], r["row"]["id"]) for r in table["sample"]] == [("production", "c"), ("sandbox", "C")]
    assert c.get(f"/api/approvals/{request}").json()["impact"] == impact
