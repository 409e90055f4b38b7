"""The acceptance story, through HTTP only: admin, template, run, tables, rows, export, import, run."""

import time

import dagster as dg


def _wait(client, slug: str, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        job = client.get(f"/api/p/{slug}/jobs/{job_id}").json()["job"]
        seen.append(job["status"])
        if job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(seen)


def test_a_person_with_curl_alone(make_client, local_settings, dagster_instance):
    client = make_client(local_settings, authenticated=False)
    assert client.get("/api/pipelines").status_code == 401
    assert client.post("/api/auth/setup", json={"password": "correct horse"}).json() == {"ok": True}
    assert client.get("/api/auth/me").json() == {"authenticated": True}

    assert client.post("/api/pipelines", json={"slug": "spending", "template": "spending"}).status_code == 200
    job = client.post("/api/p/spending/jobs").json()["job"]
    assert job["status"] == "running"
    assert _wait(client, "spending", job["id"])["status"] == "completed"

    table = client.get("/api/p/spending/tables").json()["tables"][0]
    assert (table["id"], table["rowCount"], table["fileCount"]) == ("transactions", 35, 2)
    assert len(client.get("/api/p/spending/tables/transactions/rows").json()["rows"]) == 35

    archive = client.get("/api/p/spending/export")
    assert archive.headers["content-type"] == "application/zip"
    assert client.post("/api/pipelines/import?name=copy", content=archive.content).status_code == 200
    copy_job = client.post("/api/p/copy/jobs").json()["job"]
    done = _wait(client, "copy", copy_job["id"])
    # Two months of transactions, and the year of the monthly rollup.
    assert (done["status"], done["partitions_written"], done["files_processed"]) == ("completed", 3, 1)
    assert client.get("/api/pipelines").json() == {"pipelines": ["copy", "spending"]}

    runs = dagster_instance.get_run_records(dg.RunsFilter(job_name="copy"))
    assert [r.dagster_run.run_id for r in runs] == [copy_job["id"]]
    event = dagster_instance.get_latest_materialization_event(dg.AssetKey(["copy", "transactions"]))
    assert event is not None and event.run_id == copy_job["id"]


def test_openapi_documents_every_route_with_errors(api_client):
    spec = api_client.get("/openapi.json").json()
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert len(operations) >= 25
    undocumented = [
        f"{method.upper()} {path}"
        for path, method, op in operations
        if path.startswith("/api/")
        and path != "/api/auth/logout"
        and not any(code.startswith(("4", "5")) for code in op["responses"])
    ]
    assert undocumented == []
    assert api_client.get("/docs").status_code == 200


def test_wrong_method_answers_in_the_envelope(api_client):
    response = api_client.delete("/api/auth/setup")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
