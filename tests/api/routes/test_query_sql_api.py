"""KalamDB's `POST /v1/api/sql` over Karet's tables: namespaces, bound parameters, its envelope and codes."""

import pytest

from karet_defs.engine.run import run_pipeline
from karet_defs.templates import install_template
from tests.conftest import API_KEY

SHARES_DAGSTER_INSTANCE = True
SQL_URL = "/v1/api/sql"
BEARER = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def kalam(make_client, local_settings, local_stores):
    """The API without the API-key header the other tests send, over two run pipelines."""
    client = make_client(local_settings, authenticated=False)
    install_template(local_stores, "spending-2026", "spending")
    run_pipeline(local_stores, "spending-2026")
    install_template(local_stores, "other", "spending")
    return client


def _sql(client, sql, *, params=None, namespace_id=None, headers=BEARER):
    body = {"sql": sql, "params": params, "namespace_id": namespace_id}
    return client.post(SQL_URL, json=body, headers=headers)


def test_success_has_kalamdb_shape(kalam):
    response = _sql(
        kalam,
        "SELECT category, count(*) AS n, sum(amount) > $1 AS big FROM spending_2026.transactions "
        "WHERE month = $2 GROUP BY category ORDER BY n DESC, category LIMIT 2",
        params=[100, 4],
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and isinstance(body["took"], float)
    assert body["results"] == [
        {
            "schema": [
                {"name": "category", "data_type": "Text", "index": 0},
                {"name": "n", "data_type": "BigInt", "index": 1},
                {"name": "big", "data_type": "Boolean", "index": 2},
            ],
            "rows": [["FOOD", 3, False], ["GROCERIES", 3, True]],
            "row_count": 2,
            "as_user": "api-key",
        }
    ]


def test_namespace_id_lets_names_go_unqualified(kalam):
    body = _sql(kalam, "SELECT count(*) FROM transactions", namespace_id="spending_2026").json()

    assert body["results"][0]["rows"] == [[35]]


def test_a_query_without_tables_needs_no_namespace(kalam):
    body = _sql(kalam, "SELECT $1::VARCHAR AS echo", params=["'; DROP TABLE x; --"]).json()

    assert body["results"][0]["rows"] == [["'; DROP TABLE x; --"]]


@pytest.mark.parametrize(
    ("sql", "namespace_id", "status", "code"),
    [
        ("SELEC 1", None, 400, "INVALID_SQL"),
        ("", None, 400, "INVALID_SQL"),
        ("SELECT nope FROM spending_2026.transactions", None, 400, "INVALID_SQL"),
        ("SELECT * FROM spending_2026.accounts", None, 404, "TABLE_NOT_FOUND"),
        ("SELECT * FROM ghost.transactions", None, 404, "TABLE_NOT_FOUND"),
        ("SELECT * FROM transactions", None, 404, "TABLE_NOT_FOUND"),
        ("SELECT * FROM transactions", "no such!", 404, "TABLE_NOT_FOUND"),
        ("SELECT * FROM transactions", "n" * 64, 404, "TABLE_NOT_FOUND"),
        ("DELETE FROM spending_2026.transactions", None, 403, "PERMISSION_DENIED"),
        ("INSERT INTO spending_2026.transactions VALUES (1)", None, 403, "PERMISSION_DENIED"),
        ("SELECT 1; SELECT 2", None, 403, "PERMISSION_DENIED"),
        ("SELECT * FROM read_csv('/etc/passwd')", None, 403, "PERMISSION_DENIED"),
        ("SELECT * FROM spending_2026.transactions, other.transactions", None, 403, "PERMISSION_DENIED"),
        ("SELECT * FROM other.transactions", "spending_2026", 403, "PERMISSION_DENIED"),
    ],
    ids=[
        "syntax",
        "empty",
        "unknown-column",
        "unknown-table",
        "unknown-namespace",
        "no-namespace",
        "bad-namespace",
        "long-namespace",
        "delete",
        "insert",
        "stacked",
        "file",
        "two-namespaces",
        "other-namespace",
    ],
)
def test_errors_have_kalamdb_envelope_and_codes(kalam, sql, namespace_id, status, code):
    response = _sql(kalam, sql, namespace_id=namespace_id)

    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "results", "took", "error"}
    assert (body["status"], body["results"], body["error"]["code"]) == ("error", [], code)
    assert body["error"]["message"] and "karet_error" in body["error"]["details"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdDp0ZXN0"}, {"X-API-Key": API_KEY}],
    ids=["none", "wrong-token", "basic", "api-key-header"],
)
def test_a_bearer_token_is_required(kalam, headers):
    response = _sql(kalam, "SELECT 1", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_a_malformed_body_is_invalid_sql_in_the_envelope(kalam):
    response = kalam.post(SQL_URL, json={"sql": 1, "params": "x"}, headers=BEARER)

    assert response.status_code == 400
    assert (response.json()["status"], response.json()["error"]["code"]) == ("error", "INVALID_SQL")
