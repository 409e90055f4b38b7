"""``/api/admin``: users with roles (admins only), and the audit log (auditors and up)."""

import json

import pytest

from karet_api.services.accounts import users
from karet_api.services.auth import admin
from tests.factories import make_user, token_pair_for

SHARES_DAGSTER_INSTANCE = True
PASSWORD = "correct horse"


@pytest.fixture
def client(api_client):
    return api_client


def bearer(client, name):
    return {"Authorization": f"Bearer {token_pair_for(client, name).access_token}", "X-API-Key": ""}


def test_admin_creates_lists_and_changes_users(client):
    assert client.post("/api/auth/setup", json={"password": PASSWORD}).status_code == 200

    created = client.post(
        "/api/admin/users", json={"user": "alice", "password": PASSWORD, "role": "engineer"}
    )

    assert created.status_code == 201
    assert created.json() == {
        "user": "alice",
        "role": "engineer",
        "disabled": False,
        "email": None,
        "created_at": created.json()["created_at"],
    }
    record = json.loads(client.app.state.stores.pipelines.get(users.user_key("alice")))
    assert record["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in json.dumps(record)

    listed = client.get("/api/admin/users").json()["users"]
    assert [(u["user"], u["role"]) for u in listed] == [("admin", "admin"), ("alice", "engineer")]
    assert all("password_hash" not in u for u in listed)

    changed = client.patch("/api/admin/users/alice", json={"role": "lead", "disabled": True})
    assert (changed.json()["role"], changed.json()["disabled"]) == ("lead", True)
    assert client.patch("/api/admin/users/nobody", json={"role": "lead"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"user": "Bad Name", "password": PASSWORD, "role": "engineer"}, (422, "invalid_user")),
        ({"user": "bob", "password": "short", "role": "engineer"}, (422, "invalid_password")),
        ({"user": "bob", "password": PASSWORD, "role": "root"}, (422, "invalid_request")),
        ({"user": "admin", "password": PASSWORD, "role": "auditor"}, (409, "already_exists")),
        ({"user": "api", "password": PASSWORD, "role": "auditor"}, (409, "already_exists")),
    ],
)
def test_bad_users_are_refused(client, body, expected):
    response = client.post("/api/admin/users", json=body)
    assert (response.status_code, response.json()["error"]) == expected


def test_a_user_name_is_taken_once(client):
    body = {"user": "carol", "password": PASSWORD, "role": "auditor"}
    assert client.post("/api/admin/users", json=body).status_code == 201
    again = client.post("/api/admin/users", json=body)
    assert (again.status_code, again.json()["error"]) == (409, "already_exists")


def test_the_admin_keeps_its_role_and_its_record_shape(client):
    client.post("/api/auth/setup", json={"password": PASSWORD})
    for body in ({"role": "auditor"}, {"disabled": True}):
        response = client.patch("/api/admin/users/admin", json=body)
        assert (response.status_code, response.json()["error"]) == (422, "admin_is_permanent")

    assert client.patch("/api/admin/users/admin", json={"password": "a new password"}).status_code == 200

    record = json.loads(client.app.state.stores.pipelines.get(admin.ADMIN_KEY))
    assert sorted(record) == ["created_at", "password_hash", "version"]
    client.headers.pop("X-API-Key")
    assert client.post("/api/auth/login", json={"password": "a new password"}).status_code == 200


def test_only_admins_manage_users_and_auditors_read_the_audit(client):
    for name, role in [("ann", "auditor"), ("eve", "engineer"), ("lee", "lead")]:
        make_user(client, name, role)
    for name in ("ann", "eve", "lee"):
        assert client.get("/api/admin/users", headers=bearer(client, name)).status_code == 403
        assert client.get("/api/admin/audit", headers=bearer(client, name)).status_code == 200
    refused = client.post(
        "/api/admin/users",
        json={"user": "zed", "password": PASSWORD, "role": "admin"},
        headers=bearer(client, "lee"),
    )
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "forbidden",
        "message": "this needs the admin role; lee is lead",
        "required_role": "admin",
    }


def test_a_disabled_user_or_a_role_change_takes_effect_on_the_next_request(client):
    make_user(client, "dan", "engineer")
    headers = bearer(client, "dan")
    assert client.post("/api/pipelines", json={"slug": "mine"}, headers=headers).status_code in (200, 201)

    client.patch("/api/admin/users/dan", json={"role": "auditor"})
    assert client.post("/api/pipelines", json={"slug": "mine-2"}, headers=headers).status_code == 403

    client.patch("/api/admin/users/dan", json={"disabled": True})
    assert client.get("/api/pipelines", headers=headers).status_code == 401


def test_the_audit_log_records_logins_failures_and_role_changes(client):
    client.post("/api/auth/setup", json={"password": PASSWORD})
    make_user(client, "fay", "auditor")
    client.patch("/api/admin/users/fay", json={"role": "engineer"})
    anonymous = {"X-API-Key": ""}
    client.post("/api/auth/login", json={"password": "wrong password"}, headers=anonymous)
    client.post("/api/auth/login", json={"password": PASSWORD}, headers=anonymous)

    events = client.get("/api/admin/audit").json()["events"]

    assert [e["event"] for e in events] == ["login", "login_failed", "role_changed", "setup"]
    assert events[2]["details"] == {"user": "fay", "old": "auditor", "new": "engineer"}
    assert events[2]["actor"] == "api"
    only = client.get("/api/admin/audit", params={"event": "login", "limit": 1}).json()["events"]
    assert [e["event"] for e in only] == ["login"]
