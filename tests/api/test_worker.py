"""Worker endpoints through the HTTP client: health, validate, a synchronous run as a Dagster run."""

import pytest
from fastapi.testclient import TestClient

from karet_api.main import create_app
from karet_api.services.jobs import get_job
from karet_defs.templates import install_template


@pytest.fixture
def client(pipeline_env, local_settings, dagster_instance):
    with TestClient(create_app(local_settings, dagster_instance)) as client:
        yield client


@pytest.fixture
def token_client(pipeline_env, local_settings, dagster_instance):
    settings = local_settings.model_copy(update={"worker_token": "s3cret"})
    with TestClient(create_app(settings, dagster_instance)) as client:
        yield client


BLANK = {"version": 1, "source_containers": [], "lookup_mappings": [], "mappings": [], "analytic_tables": []}


def test_health(client):
    response = client.get("/health")
    assert (response.status_code, response.text) == (200, "ok")


def test_validate_accepts_a_valid_config(client):
    response = client.post("/config/validate", json=BLANK)
    assert (response.status_code, response.json()) == (200, {"ok": True})


def test_validate_reports_every_error_with_paths(client):
    config = {
        **BLANK,
        "source_containers": [
            {"id": "a", "name": "", "path_prefix": "x/", "schema": []},
            {"id": "a", "name": "B", "path_prefix": "y/", "schema": []},
        ],
    }
    response = client.post("/config/validate", json=config)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "missing_field"
    assert body["message"] == "missing field `name` at /source_containers/0/name"
    assert body["details"] == [
        {
            "kind": "missing_field",
            "message": "missing field `name` at /source_containers/0/name",
            "path": "/source_containers/0/name",
        },
        {
            "kind": "duplicate_id",
            "message": "duplicate source_container id `a` at /source_containers/1/id",
            "path": "/source_containers/1/id",
        },
    ]


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        (b"{nope", ["/"]),
        (b"[]", ["/"]),
        (b'{"version": 1}', ["/source_containers", "/lookup_mappings", "/mappings", "/analytic_tables"]),
    ],
    ids=["json", "array", "missing-keys"],
)
def test_validate_refuses_what_is_not_a_config(client, body, paths):
    response = client.post("/config/validate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "schema"
    assert [d["path"] for d in response.json()["details"]] == paths


def test_run_demo_returns_the_karet_summary_and_a_dagster_run_id(client, local_stores, dagster_instance):
    install_template(local_stores, "spending", "spending")

    response = client.post("/jobs/run", json={"pipeline_prefix": "pipelines/spending/"})

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("partitions_written", "files_processed", "errors")} == {
        "partitions_written": 3,  # two months, and the rollup's year
        "files_processed": 1,
        "errors": [],
    }
    run = dagster_instance.get_run_by_id(body["job_id"])
    assert run is not None and run.tags["karet/trigger"] == "api"


def test_a_run_that_published_nothing_is_red_in_dagster_and_keeps_karets_200(
    client, local_stores, dagster_instance
):
    install_template(local_stores, "spending", "spending")
    seed = "pipelines/spending/transactions/seed.csv"
    local_stores.lake.put(seed, b"date,description,amount,account\n31/12/2026,RENT,-900,chk\n")

    response = client.post("/jobs/run", json={"pipeline_prefix": "pipelines/spending/"})

    assert response.status_code == 200
    body = response.json()
    assert body["partitions_written"] == 0
    assert body["errors"] == [
        f'file {seed} line 2: date "31/12/2026" does not match %Y-%m-%d; date must have a value (not_null); '
        "the file is held back until it is fixed",
        "ingest transactions_mapping: no files succeeded during ingestion",
    ]
    assert dagster_instance.get_run_by_id(body["job_id"]).status.value == "FAILURE"
    record = get_job(dagster_instance, body["job_id"], orphan_after=600)
    assert record is not None and record.status == "failed"
    assert record.error == f"nothing was published: 2 error(s): {body['errors'][0]}"


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("", "pipeline_prefix must not be empty"),
        ("/pipelines/x/", "pipeline_prefix must not start with '/'"),
        ("pipelines/x", "pipeline_prefix must end with '/'"),
        ("pipelines//x/", "pipeline_prefix must not contain empty path segments"),
        ("pipelines/../", "pipeline_prefix must not contain '.' or '..' segments"),
        ("pipelines/a b/", "pipeline_prefix segment 'a b' contains characters outside [A-Za-z0-9._-]"),
        ("pipelines/" + "a" * 600 + "/", "pipeline_prefix is too long (611 bytes, max 512)"),
    ],
)
def test_run_refuses_bad_prefixes(client, prefix, message):
    response = client.post("/jobs/run", json={"pipeline_prefix": prefix})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_prefix", "message": message, "details": []}


def test_run_of_missing_pipeline_is_404(client):
    response = client.post("/jobs/run", json={"pipeline_prefix": "pipelines/ghost/"})
    assert response.status_code == 404
    assert response.json()["error"] == "pipeline_config_not_found"


def test_run_of_invalid_config_is_400_config_invalid(client, local_stores):
    local_stores.pipelines.put(
        "pipelines/bad/pipeline.json",
        b'{"version":1,"source_containers":[],"lookup_mappings":[],"analytic_tables":[],'
        b'"mappings":[{"id":"m","source_container_id":"s","analytic_table_id":"t","columns":[]}]}',
    )
    response = client.post("/jobs/run", json={"pipeline_prefix": "pipelines/bad/"})
    assert response.status_code == 400
    assert response.json()["error"] == "config_invalid"
    assert "dangling source_container reference to `s`" in response.json()["message"]
    assert [(d["kind"], d["path"]) for d in response.json()["details"]] == [
        ("dangling_reference", "/mappings/0/source_container_id"),
        ("dangling_reference", "/mappings/0/analytic_table_id"),
    ]


def test_worker_token_is_required_when_set(token_client):
    assert token_client.post("/config/validate", json=BLANK).status_code == 401
    wrong = token_client.post("/config/validate", json=BLANK, headers={"Authorization": "Bearer nope"})
    assert wrong.json()["error"] == "unauthorized"
    ok = token_client.post("/config/validate", json=BLANK, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert token_client.get("/health").status_code == 200


def test_unknown_route_answers_in_the_envelope(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
