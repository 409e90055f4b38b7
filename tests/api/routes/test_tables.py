"""Tables and rows (of one version, time travel, hidden columns) through the API, with facts read from
Dagster's asset metadata."""

import json

from karet_defs.engine.run import run_pipeline
from karet_defs.orchestration.launch import execute_pipeline_run
from karet_defs.templates import install_template
from tests.factories import SPENDING_CSV, SPENDING_RAW, put_raw


def test_tables_list_schema_files_and_dagster_facts(api_client, local_stores, dagster_instance):
    install_template(local_stores, "spending", "spending")
    before = api_client.get("/api/p/spending/tables").json()["tables"]
    assert [(t["id"], t["fileCount"], t["rowCount"]) for t in before] == [
        ("transactions", 0, None),
        ("monthly_spend", 0, None),  # a rollup's table is listed like any table
    ]

    outcome = execute_pipeline_run(dagster_instance, "spending", trigger="api")
    table = api_client.get("/api/p/spending/tables").json()["tables"][0]

    assert table["name"] == "Transactions"
    assert [c["name"] for c in table["schema"]] == [
        "date",
        "description",
        "merchant",
        "amount",
        "account",
        "category",
        "year",
        "month",
    ]
    assert table["fileCount"] == 2
    assert table["rowCount"] == 35
    assert table["bytes"] > 0
    assert table["lastRunId"] == outcome.run_id
    assert table["lastMaterialization"].endswith("Z")


def test_rows_restore_partition_columns_and_page(any_api_client):
    client = any_api_client
    stores = client.app.state.stores
    install_template(stores, "spending", "spending")
    run_pipeline(stores, "spending")

    rows = client.get("/api/p/spending/tables/transactions/rows").json()["rows"]
    assert len(rows) == 35
    payroll = next(r for r in rows if r["description"] == "PAYROLL DEPOSIT ACME CORP")
    assert payroll == {
        "date": "2026-04-01",
        "description": "PAYROLL DEPOSIT ACME CORP",
        "merchant": "PAYROLL DEPOSIT ACME CORP",
        "amount": -3500.0,
        "account": "chequing",
        "category": "INCOME",
        "year": 2026,
        "month": 4,
    }
    page = client.get("/api/p/spending/tables/transactions/rows?offset=16&limit=4").json()["rows"]
    assert page == rows[16:20]
    assert client.get("/api/p/spending/tables/transactions/rows?offset=100").json() == {"rows": []}


def test_rows_of_an_unwritten_table_and_unknown_names(api_client, local_stores):
    install_template(local_stores, "spending", "spending")
    response = api_client.get("/api/p/spending/tables/transactions/rows")
    assert json.loads(response.content) == {"rows": []}
    assert api_client.get("/api/p/spending/tables/nope/rows").json()["error"] == "table_not_found"
    assert api_client.get("/api/p/ghost/tables").json()["error"] == "pipeline_not_found"


def test_rows_of_an_older_version_and_the_hidden_columns(any_api_client):
    client = any_api_client
    stores = client.app.state.stores
    install_template(stores, "spending", "spending")
    run_pipeline(stores, "spending")
    put_raw(stores, SPENDING_RAW + "may.csv", SPENDING_CSV)
    run_pipeline(stores, "spending")
    rows_url = "/api/p/spending/tables/transactions/rows"

    assert len(client.get(rows_url).json()["rows"]) == 37
    first = client.get(f"{rows_url}?version=0").json()["rows"]
    assert len(first) == 35
    assert not any("_karet_source" in row for row in first)

    hidden = client.get(f"{rows_url}?include_hidden=true").json()["rows"]
    assert {row["_karet_source"] for row in hidden} == {SPENDING_RAW + "seed.csv", SPENDING_RAW + "may.csv"}
    assert {row["_karet_mapping"] for row in hidden} == {"transactions_mapping"}
    paged = client.get(f"{rows_url}?version=0&include_hidden=true&offset=30&limit=10").json()["rows"]
    assert [{k: v for k, v in r.items() if not k.startswith("_karet_")} for r in paged] == first[30:]

    missing = client.get(f"{rows_url}?version=9")
    assert (missing.status_code, missing.json()["error"]) == (404, "version_not_found")


def test_an_unwritten_table_has_no_versions(api_client, local_stores):
    install_template(local_stores, "spending", "spending")
    response = api_client.get("/api/p/spending/tables/transactions/rows?version=0")
    assert (response.status_code, response.json()["error"]) == (404, "version_not_found")
    bad = api_client.get("/api/p/spending/tables/transactions/rows?version=-1")
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_request")


def test_openapi_documents_time_travel_and_hidden_columns(api_client):
    operation = api_client.get("/openapi.json").json()["paths"]["/api/p/{slug}/tables/{table_id}/rows"]["get"]
    assert {"version", "include_hidden", "limit", "offset"} <= {p["name"] for p in operation["parameters"]}
    assert "version_not_found" in operation["responses"]["404"]["description"]
