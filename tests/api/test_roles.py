"""Every route's minimum role: the OpenAPI document shows it, and a walk of every route with every role gets
403 exactly below it. Routes come from the app itself, so a route added later is walked too; one that
declares no role gets the default (reads: auditor, writes: engineer)."""

import re

import pytest
from fastapi.testclient import TestClient

from karet_api.main import create_app
from karet_api.roles import READ_METHODS
from karet_defs.settings import Settings
from tests.factories import make_user, token_pair_for

SHARES_DAGSTER_INSTANCE = True
ROLES = ["auditor", "engineer", "lead", "admin"]
# Where a route's role differs from the default rule; every other guarded route follows the rule.
DECLARED = {
    ("post", "/api/p/{slug}/query"): "auditor",
    ("post", "/api/p/{slug}/validate"): "auditor",
    ("post", "/api/p/{slug}/dashboards/{name}/data"): "auditor",
    ("post", "/api/p/{slug}/dashboards/{name}/validate"): "auditor",
    ("post", "/api/p/{slug}/tables/{table_id}/versions/{n}/restore"): "lead",
    ("post", "/api/p/{slug}/tables/{table_id}/compact"): "lead",
    ("post", "/api/p/{slug}/tables/{table_id}/expire"): "lead",
    ("post", "/api/p/{slug}/config/versions/{version}/demote"): "lead",
    ("post", "/api/p/{slug}/config/versions/{version}/retire"): "lead",
    ("get", "/api/approvals"): "lead",
    ("get", "/api/approvals/{request_id}"): "lead",
    ("post", "/api/approvals/{request_id}/approve"): "lead",
    ("post", "/api/approvals/{request_id}/reject"): "lead",
    ("get", "/api/approvals/{request_id}/comments"): "engineer",
    ("get", "/api/notifications/pending-approvals"): "lead",
    ("delete", "/api/p/{slug}/members"): "lead",
    ("get", "/api/admin/users"): "admin",
    ("post", "/api/admin/users"): "admin",
    ("patch", "/api/admin/users/{user}"): "admin",
    ("get", "/api/admin/export"): "admin",
    ("post", "/api/admin/import"): "admin",
    ("post", "/api/admin/reset"): "admin",
}
PUBLIC_PREFIXES = ("/api/auth/", "/api/events/s3", "/v1/", "/health", "/config/validate", "/jobs/run")
# Event streams never end on their own: only their refusals are walked.
STREAMS = {"/api/events", "/api/p/{slug}/jobs/events"}
PATH_VALUES = {"version": "1", "n": "1", "path": "raw/x.csv", "user": "nobody"}


def expected_role(method: str, path: str) -> str:
    return DECLARED.get((method, path), "auditor" if method.upper() in READ_METHODS else "engineer")


@pytest.fixture(scope="module")
def operations(_module_dagster_instance, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("roles"), api_key="roles-key")
    with TestClient(create_app(settings, _module_dagster_instance)) as client:
        document = client.get("/openapi.json").json()
        for role in ROLES:
            make_user(client, f"{role}-user", role)
        headers = {
            role: {"Authorization": f"Bearer {token_pair_for(client, f'{role}-user').access_token}"}
            for role in ROLES
        }
        yield client, document, headers


def guarded(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/api/") and not path.startswith(PUBLIC_PREFIXES):
                yield method, path, operation


def test_openapi_shows_every_routes_role(operations):
    _, document, _ = operations
    walked = list(guarded(document))
    assert len(walked) > 40
    for method, path, operation in walked:
        role = expected_role(method, path)
        assert operation.get("x-required-role") == role, (method, path)
        assert f"Minimum role: `{role}`." in operation["description"]
    for path in ("/api/auth/login", "/v1/api/auth/login", "/health"):
        assert next(iter(document["paths"][path].values()))["x-required-role"] == "public"


def test_every_route_refuses_the_roles_below_its_minimum(operations):
    client, document, headers = operations
    failures = []
    statuses: dict[int, int] = {}
    for method, path, _ in guarded(document):
        minimum = ROLES.index(expected_role(method, path))
        url = re.sub(r"{(\w+)}", lambda m: PATH_VALUES.get(m.group(1), "matrix"), path)
        for rank, role in enumerate(ROLES):
            if rank >= minimum and path in STREAMS:
                continue
            body = {} if method.upper() not in READ_METHODS else None
            response = client.request(method.upper(), url, json=body, headers=headers[role])
            refused = response.status_code == 403
            statuses[response.status_code // 100] = statuses.get(response.status_code // 100, 0) + 1
            if refused != (rank < minimum) or response.status_code == 401:
                failures.append((method, path, role, response.status_code, response.text[:200]))
    assert failures == []
    assert statuses[2] > 20 and statuses[4] > 100  # reads answer, writes of made-up things are refused


def test_an_unknown_caller_is_401_everywhere(operations):
    client, document, _ = operations
    for method, path, _ in guarded(document):
        url = re.sub(r"{(\w+)}", lambda m: PATH_VALUES.get(m.group(1), "matrix"), path)
        response = client.request(method.upper(), url, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401, (method, path)
