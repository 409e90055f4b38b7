"""Table versions, health and maintenance through the API: the Delta log read, operations as Dagster runs."""

import json

import dagster as dg
import pytest

from karet_defs.engine.run import run_pipeline
from karet_defs.templates import install_template
from tests.factories import SPENDING_CSV, SPENDING_RAW, put_raw

TABLE_URL = "/api/p/spending/tables/transactions"


@pytest.fixture
def written(api_client, local_stores):
    """The Spending demo with two versions of its table: the seed file, then one more file."""
    install_template(local_stores, "spending", "spending")
    run_pipeline(local_stores, "spending", commit_info={"karet.job_id": "seed-run", "karet.trigger": "api"})
    put_raw(local_stores, SPENDING_RAW + "may.csv", SPENDING_CSV)
    run_pipeline(
        local_stores, "spending", commit_info={"karet.job_id": "may-run", "karet.trigger": "webhook"}
    )
    return api_client


def _rows(client, version=None):
    suffix = "" if version is None else f"?version={version}"
    return sorted(
        json.dumps(r, sort_keys=True) for r in client.get(f"{TABLE_URL}/rows{suffix}").json()["rows"]
    )


def test_versions_newest_first(written):
    versions = written.get(f"{TABLE_URL}/versions").json()["versions"]

    assert [(v["version"], v["operation"], v["job_id"], v["trigger"]) for v in versions] == [
        (1, "run", "may-run", "webhook"),
        (0, "run", "seed-run", "api"),
    ]
    assert (versions[0]["rows_added"], versions[0]["rows_removed"], versions[0]["schema_changed"]) == (
        2,
        0,
        False,
    )
    assert set(versions[0]) == {
        "version",
        "timestamp",
        "operation",
        "job_id",
        "trigger",
        "rows_added",
        "rows_removed",
        "files_added",
        "files_removed",
        "schema_changed",
    }
    assert versions[0]["timestamp"].endswith("Z") and versions[0]["files_added"] >= 1


def test_unwritten_and_unknown_tables(api_client, local_stores):
    install_template(local_stores, "spending", "spending")

    assert api_client.get(f"{TABLE_URL}/versions").json() == {"versions": []}
    for response in (
        api_client.get(f"{TABLE_URL}/health"),
        api_client.post(f"{TABLE_URL}/compact", json={"strategy": "binpack"}),
        api_client.post(f"{TABLE_URL}/expire", json={"retain_last": 5, "older_than": None}),
    ):
        assert (response.status_code, response.json()["error"]) == (404, "table_not_found")
        assert "not been written yet" in response.json()["message"]
    restore = api_client.post(f"{TABLE_URL}/versions/0/restore")
    assert (restore.status_code, restore.json()["error"]) == (404, "version_not_found")
    unknown = api_client.get("/api/p/spending/tables/nope/versions")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "table_not_found")
    ghost = api_client.get("/api/p/ghost/tables/transactions/health")
    assert (ghost.status_code, ghost.json()["error"]) == (404, "pipeline_not_found")


def test_health_has_the_drls_shape(written):
    health = written.get(f"{TABLE_URL}/health").json()

    assert list(health) == [
        "success",
        "table",
        "snapshot_count",
        "data_file_count",
        "total_size_bytes",
        "avg_file_size_bytes",
        "small_file_count",
        "recommendation",
    ]
    assert (health["success"], health["table"], health["snapshot_count"]) == (True, "transactions", 2)
    assert health["data_file_count"] == health["small_file_count"] >= 3
    assert health["avg_file_size_bytes"] == health["total_size_bytes"] // health["data_file_count"]
    assert health["recommendation"] == "Healthy"


def test_compact_runs_a_dagster_job_and_keeps_every_row(written, dagster_instance):
    before = _rows(written)

    response = written.post(f"{TABLE_URL}/compact", json={"strategy": "binpack"})

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("success", "operation", "table")} == {
        "success": True,
        "operation": "compact",
        "table": "transactions",
    }
    details = json.loads(body["details_json"])
    assert details["rewritten_files"] > details["new_files"] > 0
    assert _rows(written) == before
    run = dagster_instance.get_run_by_id(body["job_id"])
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == "spending_compact"
    assert (run.tags["karet/pipeline"], run.tags["karet/trigger"]) == ("spending", "api")
    newest = written.get(f"{TABLE_URL}/versions").json()["versions"][0]
    assert (newest["version"], newest["operation"], newest["job_id"]) == (2, "compact", body["job_id"])
    jobs = written.get("/api/p/spending/jobs").json()["jobs"]
    assert [(j["id"], j["status"]) for j in jobs] == [(body["job_id"], "completed")]


def test_compact_refuses_unknown_strategies_and_options(written):
    for body in ({"strategy": "zorder"}, {"strategy": "binpack", "options": {"sort_by": ["date"]}}):
        response = written.post(f"{TABLE_URL}/compact", json=body)
        assert (response.status_code, response.json()["error"]) == (422, "invalid_request")


def test_expire_removes_older_versions(written, dagster_instance):
    compacted = json.loads(written.post(f"{TABLE_URL}/compact", json={}).json()["details_json"])

    response = written.post(f"{TABLE_URL}/expire", json={"retain_last": 1, "older_than": None})

    assert response.status_code == 200
    body = response.json()
    assert (body["operation"], body["table"]) == ("expire", "transactions")
    # The files compaction replaced were needed by the expired versions only.
    assert json.loads(body["details_json"]) == {
        "expired_versions": 2,
        "oldest_version": 2,
        "deleted_files": compacted["rewritten_files"],
    }
    assert [v["version"] for v in written.get(f"{TABLE_URL}/versions").json()["versions"]] == [4, 3, 2]
    gone = written.get(f"{TABLE_URL}/rows?version=0")
    assert (gone.status_code, gone.json()["error"]) == (404, "version_not_found")
    assert len(written.get(f"{TABLE_URL}/rows").json()["rows"]) == 37
    assert dagster_instance.get_run_by_id(body["job_id"]).tags["karet/maintenance"] == "expire"
    invalid = written.post(f"{TABLE_URL}/expire", json={"retain_last": 0})
    assert (invalid.status_code, invalid.json()["error"]) == (422, "invalid_request")


def test_restore_commits_a_new_version_with_the_old_rows(written, dagster_instance):
    first = _rows(written, 0)

    response = written.post(f"{TABLE_URL}/versions/0/restore")

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("success", "operation", "table", "restored_version", "version")} == {
        "success": True,
        "operation": "restore",
        "table": "transactions",
        "restored_version": 0,
        "version": 2,
    }
    assert _rows(written) == first
    assert dagster_instance.get_run_by_id(body["job_id"]).job_name == "spending_restore"
    newest = written.get(f"{TABLE_URL}/versions").json()["versions"][0]
    assert (newest["operation"], newest["job_id"], newest["rows_removed"]) == ("restore", body["job_id"], 2)
    for missing in (9, -1, 2**70):  # 2**70: past delta-rs' 64-bit versions, still a plain 404
        response = written.post(f"{TABLE_URL}/versions/{missing}/restore")
        assert (response.status_code, response.json()["error"]) == (404, "version_not_found")


def test_openapi_documents_the_version_routes(api_client):
    paths = api_client.get("/openapi.json").json()["paths"]
    restore = paths["/api/p/{slug}/tables/{table_id}/versions/{n}/restore"]["post"]
    assert "version_not_found" in restore["responses"]["404"]["description"]
    compact = paths["/api/p/{slug}/tables/{table_id}/compact"]["post"]
    assert {"401", "404", "422", "500", "503"} <= set(compact["responses"])
    for path in ("versions", "health", "expire"):
        assert any(p.endswith(f"/{path}") for p in paths)
