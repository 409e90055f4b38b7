"""Karet's SQL page and saved queries through the API, over tables written by real runs (local and S3)."""

import io
import json
import zipfile

import pytest

from karet_defs.engine.run import run_pipeline
from karet_defs.query.datasets import ParquetFiles
from karet_defs.store import keys
from karet_defs.store.changes import is_karet_output
from karet_defs.templates import install_template
from tests.factories import SPENDING_CSV, SPENDING_RAW, put_raw

SHARES_DAGSTER_INSTANCE = True
QUERY_URL = "/api/p/spending/query"
QUERIES_URL = "/api/p/spending/queries"


@pytest.fixture
def spending(any_api_client):
    """The Spending demo, run once, on the local store and then on S3."""
    stores = any_api_client.app.state.stores
    install_template(stores, "spending", "spending")
    run_pipeline(stores, "spending")
    return any_api_client


def _query(client, sql, **extra):
    return client.post(QUERY_URL, json={"sql": sql, **extra})


def test_query_answers_columns_rows_and_row_count(spending):
    response = _query(
        spending,
        "SELECT category, count(*) AS n, round(sum(amount), 2) AS total FROM transactions "
        "WHERE amount > 0 GROUP BY category ORDER BY total DESC LIMIT 3",
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "columns": ["category", "n", "total"],
        "rows": [
            {"category": "BILLS", "n": 5, "total": 3990.36},
            {"category": "GROCERIES", "n": 6, "total": 518.26},
            {"category": "SHOPPING", "n": 2, "total": 273.98},
        ],
        "rowCount": 3,
    }


@pytest.mark.parametrize(
    "relation",
    ["transactions", "Transactions", "spending.transactions", '"transactions"'],
    ids=["id", "case-insensitive", "namespace", "quoted"],
)
def test_each_table_is_known_by_id_name_slug_and_namespace(spending, relation):
    body = _query(spending, f"SELECT count(*) AS n, min(date) AS first FROM {relation}").json()

    assert body["rows"] == [{"n": 35, "first": "2026-04-01"}]


def test_partition_columns_are_typed_and_filter(spending):
    body = _query(
        spending, "SELECT year, month, count(*) AS n FROM transactions WHERE month = 5 GROUP BY ALL"
    ).json()

    assert body["rows"] == [{"year": 2026, "month": 5, "n": 17}]


def test_query_reads_the_current_version_or_a_chosen_one(spending):
    stores = spending.app.state.stores
    put_raw(stores, SPENDING_RAW + "may.csv", SPENDING_CSV)
    run_pipeline(stores, "spending")

    current = _query(spending, "SELECT count(*) AS n FROM transactions").json()
    first = _query(spending, "SELECT count(*) AS n FROM transactions", versions={"transactions": 0}).json()
    missing = _query(spending, "SELECT 1", versions={"transactions": 9})

    assert (current["rows"], first["rows"]) == ([{"n": 37}], [{"n": 35}])
    assert (missing.status_code, missing.json()["error"]) == (404, "version_not_found")


def test_a_pipeline_that_never_ran_answers_no_rows(api_client, local_stores):
    install_template(local_stores, "fresh", "spending")

    body = api_client.post("/api/p/fresh/query", json={"sql": "SELECT * FROM transactions"}).json()

    assert body["rowCount"] == 0 and body["rows"] == []
    assert body["columns"][:4] == ["date", "description", "merchant", "amount"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({}, 422, "missing_sql"),
        ({"sql": "   "}, 422, "missing_sql"),
        ({"sql": "SELECT 1 " + " " * 10_000}, 422, "query_too_long"),
        ({"sql": "SELEC 1"}, 400, "query_error"),
        ({"sql": "SELECT nope FROM transactions"}, 400, "query_error"),
        ({"sql": "SELECT * FROM accounts"}, 400, "query_error"),
        ({"sql": "DELETE FROM transactions"}, 400, "query_not_allowed"),
        ({"sql": "SELECT 1; SELECT 2"}, 400, "query_not_allowed"),
    ],
    ids=["absent", "blank", "too-long", "syntax", "unknown-column", "unknown-table", "delete", "two"],
)
def test_query_refusals_have_karet_codes(spending, body, status, error):
    response = spending.post(QUERY_URL, json=body)

    assert (response.status_code, response.json()["error"]) == (status, error), response.text
    if error == "query_not_allowed":
        assert response.json()["message"].startswith("Only SELECT queries are allowed")


def test_query_of_a_missing_pipeline(api_client):
    response = api_client.post("/api/p/ghost/query", json={"sql": "SELECT 1"})

    assert (response.status_code, response.json()["error"]) == (404, "pipeline_not_found")


def test_query_needs_a_session_or_the_api_key(make_client, local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    anonymous = make_client(local_settings, authenticated=False)

    assert anonymous.post(QUERY_URL, json={"sql": "SELECT 1"}).status_code == 401


def test_saved_queries_round_trip(spending):
    stores = spending.app.state.stores
    created = spending.post(
        QUERIES_URL, json={"name": "Top merchants!", "sql": "SELECT merchant FROM transactions LIMIT 5"}
    )
    spending.post(QUERIES_URL, json={"name": "Average amount", "sql": "SELECT avg(amount) FROM transactions"})

    assert created.status_code == 201
    assert created.json() == {
        "id": "top_merchants",
        "name": "Top merchants!",
        "sql": "SELECT merchant FROM transactions LIMIT 5",
    }
    listed = spending.get(QUERIES_URL).json()["queries"]
    assert [q["id"] for q in listed] == ["average_amount", "top_merchants"]
    assert spending.get(f"{QUERIES_URL}/top_merchants").json() == created.json()
    key = keys.queries_prefix("spending") + "top_merchants.json"
    assert json.loads(stores.pipelines.get(key)) == created.json()
    assert is_karet_output(key)  # the raw-file watcher never takes a saved query for input

    assert spending.delete(f"{QUERIES_URL}/top_merchants").json() == {"ok": True}
    assert spending.delete(f"{QUERIES_URL}/top_merchants").json() == {"ok": True}
    gone = spending.get(f"{QUERIES_URL}/top_merchants")
    assert (gone.status_code, gone.json()["error"]) == (404, "query_not_found")
    assert [q["id"] for q in spending.get(QUERIES_URL).json()["queries"]] == ["average_amount"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"name": "x"}, 422, "missing_fields"),
        ({"sql": "SELECT 1"}, 422, "missing_fields"),
        ({"name": " ", "sql": "SELECT 1"}, 422, "missing_fields"),
        ({"name": "bad", "sql": "SELECT nope FROM transactions"}, 400, "invalid_query"),
        ({"name": "drop", "sql": "DROP TABLE transactions"}, 400, "invalid_query"),
        ({"name": "TOTAL", "sql": "SELECT 2"}, 409, "name_taken"),
    ],
    ids=["no-sql", "no-name", "blank-name", "does-not-plan", "not-a-select", "same-slug"],
)
def test_saving_a_query_is_refused(spending, body, status, error):
    assert spending.post(QUERIES_URL, json={"name": "Total", "sql": "SELECT 1"}).status_code == 201

    response = spending.post(QUERIES_URL, json=body)

    assert (response.status_code, response.json()["error"]) == (status, error), response.text


def test_saved_queries_of_a_missing_pipeline(api_client):
    for response in (
        api_client.get("/api/p/ghost/queries"),
        api_client.post("/api/p/ghost/queries", json={"name": "a", "sql": "SELECT 1"}),
    ):
        assert (response.status_code, response.json()["error"]) == (404, "pipeline_not_found")
    hostile_id = api_client.get("/api/p/ghost/queries/..%2Fpipeline")
    assert hostile_id.status_code == 404


def test_saved_queries_travel_with_a_renamed_and_exported_pipeline(api_client, local_stores):
    install_template(local_stores, "spending", "spending")
    api_client.post(QUERIES_URL, json={"name": "All", "sql": "SELECT * FROM transactions"})

    renamed = api_client.patch("/api/pipelines/spending", json={"newSlug": "budget"})

    assert renamed.status_code == 200, renamed.text
    assert [q["id"] for q in api_client.get("/api/p/budget/queries").json()["queries"]] == ["all"]
    exported = zipfile.ZipFile(io.BytesIO(api_client.get("/api/p/budget/export").content))
    assert json.loads(exported.read("queries/all.json"))["sql"] == "SELECT * FROM transactions"


def test_files_duckdb_cannot_bind_are_read_through_arrow(api_client, local_stores, monkeypatch):
    install_template(local_stores, "spending", "spending")
    run_pipeline(local_stores, "spending")
    # As when the schema has a column that no data file holds yet.
    monkeypatch.setattr(ParquetFiles, "select_sql", lambda self: "SELECT missing FROM range(1)")

    body = _query(api_client, "SELECT count(*) AS n, sum(month) AS months FROM transactions").json()

    assert body["rows"] == [{"n": 35, "months": 4 * 18 + 5 * 17}]
