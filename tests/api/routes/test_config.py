"""Config read/write with ETag / If-Match as a real compare-and-swap, and validation, through HTTP."""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from karet_defs.templates import template_files

BLANK = template_files("blank")["pipeline.json"]
EDITED = json.dumps({**json.loads(BLANK), "layout": {"edited": True}}).encode()


SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster


@pytest.fixture
def client(any_api_client):
    response = any_api_client.post("/api/pipelines", json={"slug": "cfg", "template": "blank"})
    assert response.status_code == 200
    return any_api_client


def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def test_get_returns_the_stored_bytes_and_a_quoted_etag(client):
    response = client.get("/api/p/cfg/config")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == BLANK
    assert response.headers["etag"] == f'"{_md5(BLANK)}"'


def test_get_of_a_missing_config_is_not_found(any_api_client):
    response = any_api_client.get("/api/p/nothing/config")
    assert (response.status_code, response.json()["error"]) == (404, "pipeline_config_not_found")


def test_put_without_if_match_stores_the_body_verbatim(client):
    body = b'{"version":1,  "source_containers":[],"lookup_mappings":[],"mappings":[],"analytic_tables":[]}'

    response = client.put("/api/p/cfg/config", content=body)

    assert (response.status_code, response.json()) == (
        200,
        {"ok": True, "etag": _md5(body), "version": 2, "environment": "production"},
    )
    assert response.headers["etag"] == f'"{_md5(body)}"'
    assert response.headers["x-karet-config-version"] == "2"
    assert client.get("/api/p/cfg/config").content == body


@pytest.mark.parametrize("quote", ['"', ""], ids=["quoted", "bare"])
def test_put_with_the_current_etag_succeeds(client, quote):
    etag = client.get("/api/p/cfg/config").headers["etag"].strip('"')
    body = json.dumps({**json.loads(BLANK), "layout": {"x": 1}}).encode()

    response = client.put("/api/p/cfg/config", content=body, headers={"If-Match": f"{quote}{etag}{quote}"})

    assert (response.status_code, response.json()["etag"]) == (200, _md5(body))


def test_put_with_a_stale_etag_is_refused_and_changes_nothing(client):
    stale = _md5(b"something else")

    response = client.put("/api/p/cfg/config", content=EDITED, headers={"If-Match": f'"{stale}"'})

    assert response.status_code == 412
    assert response.json() == {
        "error": "etag_mismatch",
        "message": f"ETag mismatch: expected {stale}, got {_md5(BLANK)}",
        "ok": False,
    }
    assert client.get("/api/p/cfg/config").content == BLANK


def test_put_with_if_match_on_a_missing_config_is_refused(any_api_client):
    response = any_api_client.put("/api/p/ghost/config", content=EDITED, headers={"If-Match": "abc"})

    assert response.status_code == 412
    assert response.json()["message"] == "ETag mismatch: expected abc, got <none>"
    assert any_api_client.get("/api/p/ghost/config").status_code == 404


def test_put_refuses_a_body_that_is_not_json(client):
    response = client.put("/api/p/cfg/config", content=b"{nope")

    assert response.status_code == 422
    body = response.json()
    assert (body["error"], body["ok"]) == ("invalid_json", False)
    assert body["message"].startswith("invalid_json: Expecting property name")
    assert client.get("/api/p/cfg/config").content == BLANK


def test_put_of_an_invalid_config_is_422_with_every_error_and_stores_nothing(client):
    invalid = {
        **json.loads(BLANK),
        "source_containers": [
            {"id": "s", "name": "S", "path_prefix": "in/", "schema": [{"name": "n", "type": "numbr"}]}
        ],
        "mappings": [{"id": "m", "source_container_id": "s", "analytic_table_id": "ghost", "columns": []}],
    }

    response = client.put("/api/p/cfg/config", json=invalid)

    assert response.status_code == 422
    assert response.json() == {
        "error": "dangling_reference",
        "message": "dangling analytic_table reference to `ghost` at /mappings/0/analytic_table_id",
        "ok": False,
        "details": [
            {
                "kind": "dangling_reference",
                "message": "dangling analytic_table reference to `ghost` at /mappings/0/analytic_table_id",
                "path": "/mappings/0/analytic_table_id",
            },
            {
                "kind": "schema",
                "message": "schema error at /source_containers/0/schema/0/type: unknown column type `numbr`; "
                "expected one of string, number, int64, float64, date, bool",
                "path": "/source_containers/0/schema/0/type",
            },
        ],
    }
    assert client.get("/api/p/cfg/config").content == BLANK


def test_a_draft_is_stored_without_validation_and_the_live_config_stays(client):
    draft = b'{"version": 1, "source_containers": [{"id": ""}]}'
    no_draft_yet = client.get("/api/p/cfg/config?draft=true")

    saved = client.put("/api/p/cfg/config?draft=true", content=draft)

    assert (no_draft_yet.content, no_draft_yet.headers["x-karet-draft"]) == (BLANK, "false")
    assert saved.json() == {"ok": True, "etag": _md5(draft)}
    read = client.get("/api/p/cfg/config?draft=true")
    assert (read.content, read.headers["x-karet-draft"], read.headers["etag"]) == (
        draft,
        "true",
        f'"{_md5(draft)}"',
    )
    assert client.get("/api/p/cfg/config").content == BLANK
    stale = client.put("/api/p/cfg/config?draft=true", content=draft, headers={"If-Match": _md5(BLANK)})
    assert stale.status_code == 412
    # Publishing a valid config retires the draft.
    assert client.put("/api/p/cfg/config", content=EDITED).status_code == 200
    assert client.get("/api/p/cfg/config?draft=true").headers["x-karet-draft"] == "false"


def test_put_refuses_an_invalid_slug(api_client):
    response = api_client.put("/api/p/%2E%2E/config", content=b"{}")
    assert (response.status_code, response.json()["error"]) == (422, "invalid_slug")


def test_concurrent_puts_with_one_etag_have_exactly_one_winner(client):
    etag = client.get("/api/p/cfg/config").headers["etag"]
    bodies = [json.dumps({**json.loads(BLANK), "layout": {"writer": i}}).encode() for i in range(50)]

    def put(body: bytes):
        return body, client.put("/api/p/cfg/config", content=body, headers={"If-Match": etag})

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(put, bodies))

    statuses = sorted(response.status_code for _, response in results)
    assert statuses == [200] + [412] * 49
    winner = next(body for body, response in results if response.status_code == 200)
    stored = client.get("/api/p/cfg/config")
    assert stored.content == winner
    assert stored.headers["etag"] == f'"{_md5(winner)}"'


def test_validate_accepts_a_valid_config(api_client):
    response = api_client.post("/api/p/any/validate", content=BLANK)
    assert (response.status_code, response.json()) == (200, {"ok": True})


def test_validate_reports_every_error(api_client):
    config = {
        **json.loads(BLANK),
        "source_containers": [
            {"id": "a", "name": "", "path_prefix": "x/", "schema": []},
            {"id": "a", "name": "B", "path_prefix": "y/", "schema": []},
        ],
    }

    response = api_client.post("/api/p/any/validate", json=config)

    assert response.status_code == 422
    assert response.json()["error"] == "missing_field"
    assert [d["kind"] for d in response.json()["details"]] == ["missing_field", "duplicate_id"]


def test_validate_refuses_what_is_not_a_config(api_client):
    response = api_client.post("/api/p/any/validate", content=b"{nope")

    assert (response.status_code, response.json()["error"]) == (422, "schema")
    assert response.json()["details"][0]["path"] == "/"
