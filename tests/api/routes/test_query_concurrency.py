"""The process-wide query limit through HTTP: beyond it, 429 with Retry-After in each prefix's envelope."""

import pytest

from karet_defs.engine.run import run_pipeline
from karet_defs.templates import install_template
from tests.conftest import API_KEY

SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster


@pytest.fixture
def busy(make_client, local_settings):
    """The API allowing one query at a time, waiting 0.1 s for it; the Spending template run once."""
    client = make_client(
        local_settings.model_copy(update={"query_concurrency": 1, "query_wait_seconds": 0.1})
    )
    stores = client.app.state.stores
    install_template(stores, "spending", "spending")
    run_pipeline(stores, "spending")
    return client


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("post", "/api/p/spending/query", {"sql": "SELECT count(*) AS n FROM transactions"}),
        ("post", "/api/p/spending/dashboards/spending_overview/data", {"filters": {}}),
        ("post", "/api/p/spending/dashboards/spending_overview/validate", None),
    ],
    ids=["query", "dashboard-data", "dashboard-validate"],
)
def test_karet_routes_answer_429_rate_limited_while_every_slot_is_busy(busy, method, url, body):
    with busy.app.state.query_gate.slot():
        refused = busy.request(method, url, json=body)
    served = busy.request(method, url, json=body)

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": "rate_limited",
        "message": "all 1 query slots are busy; try again shortly",
    }
    assert served.status_code == 200, served.text


def test_kalamdb_sql_answers_429_rate_limited_in_its_envelope(busy):
    request = {"sql": "SELECT count(*) AS n FROM spending.transactions"}
    headers = {"Authorization": f"Bearer {API_KEY}"}

    with busy.app.state.query_gate.slot():
        refused = busy.post("/v1/api/sql", json=request, headers=headers)
    served = busy.post("/v1/api/sql", json=request, headers=headers)

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    body = refused.json()
    assert (body["status"], body["results"]) == ("error", [])
    assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert body["error"]["details"] == {"karet_error": "rate_limited"}
    assert served.status_code == 200 and served.json()["results"][0]["rows"] == [[35]]


def test_the_default_limit_lets_a_few_queries_run_together(api_client):
    gate = api_client.app.state.query_gate

    assert (gate.slots, gate.wait_seconds) == (4, 2.0)
