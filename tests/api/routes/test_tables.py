"""Tables and rows through the API, with facts read from Dagster's asset metadata."""

import json

from karet_defs.engine.run import run_pipeline
from karet_defs.orchestration.launch import execute_pipeline_run
from karet_defs.templates import install_template


def test_tables_list_schema_files_and_dagster_facts(api_client, local_stores, dagster_instance):
    install_template(local_stores, "spending", "spending")
    before = api_client.get("/api/p/spending/tables").json()["tables"]
    assert [(t["id"], t["fileCount"], t["rowCount"]) for t in before] == [("transactions", 0, None)]

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
