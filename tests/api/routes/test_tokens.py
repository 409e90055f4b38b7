"""``/v1/api/auth`` (KalamDB's shapes): login, refresh rotation and reuse, logout, me, localhost-only setup
and status, brute force, and the sliding renewal of ``GET /api/auth/me``."""

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from karet_api.services.accounts import identity, tokens
from karet_api.services.auth.secret import resolve_session_secret
from tests.factories import make_user

SHARES_DAGSTER_INSTANCE = True
PASSWORD = "user password"


@pytest.fixture
def client(make_client, local_settings):
    client = make_client(local_settings, authenticated=False)
    make_user(client, "alice", "engineer", PASSWORD)
    return client


def local(client, host="127.0.0.1"):
    """The same app, as seen from ``host``."""
    return TestClient(client.app, client=(host, 50000))


def login(client, user="alice", password=PASSWORD, **kwargs):
    return client.post("/v1/api/auth/login", json={"user": user, "password": password}, **kwargs)


def kalam_error(response):
    body = response.json()
    assert (body["status"], body["results"]) == ("error", [])
    return response.status_code, body["error"]["code"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_login_answers_kalamdb_shape_and_sets_the_cookies(client):
    response = login(client)

    assert response.status_code == 200
    body = response.json()
    assert sorted(body) == ["access_token", "expires_in", "refresh_token", "user"]
    assert body["user"]["user"] == "alice" and body["user"]["role"] == "engineer"
    assert body["expires_in"] == tokens.ACCESS_TTL_SECONDS
    cookies = {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}
    assert "Max-Age=900" in cookies[identity.ACCESS_COOKIE]
    assert "Path=/v1/api/auth" in cookies[identity.REFRESH_COOKIE]
    assert "HttpOnly" in cookies[identity.REFRESH_COOKIE]

    me = client.get("/v1/api/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["user"] == "alice"
    # The access token opens Karet's own API too, with the user's role.
    assert client.get("/api/pipelines", headers=bearer(body["access_token"])).status_code == 200
    assert client.get("/api/pipelines").status_code == 200  # through the cookie


@pytest.mark.parametrize(
    ("user", "password"), [("alice", "wrong password"), ("nobody", PASSWORD), ("", PASSWORD), ("alice", "")]
)
def test_wrong_credentials_are_unauthorized(client, user, password):
    assert kalam_error(login(client, user, password)) == (401, "UNAUTHORIZED")


def test_refresh_rotates_and_a_replay_revokes_the_family(client):
    first = login(client).json()
    client.cookies.clear()

    rotated = client.post("/v1/api/auth/refresh", headers=bearer(first["refresh_token"]))
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/v1/api/auth/me", headers=bearer(second["access_token"])).status_code == 200

    replay = client.post("/v1/api/auth/refresh", headers=bearer(first["refresh_token"]))

    assert kalam_error(replay) == (401, "UNAUTHORIZED")
    assert replay.json()["error"]["details"]["karet_error"] == "token_reused"
    for token in (second["access_token"], first["access_token"]):
        assert client.get("/v1/api/auth/me", headers=bearer(token)).status_code == 401
    assert client.post("/v1/api/auth/refresh", headers=bearer(second["refresh_token"])).status_code == 401
    client.headers["X-API-Key"] = client.app.state.settings.api_key
    revoked = client.get("/api/admin/audit", params={"event": "token_revoked"}).json()["events"]
    assert revoked[0]["details"] == {"reason": "refresh token reused"}


def test_refresh_reads_the_cookie_and_refuses_an_access_token(client):
    body = login(client).json()
    assert client.post("/v1/api/auth/refresh").status_code == 200  # the karet_refresh cookie
    client.cookies.clear()
    assert kalam_error(client.post("/v1/api/auth/refresh", headers=bearer(body["access_token"]))) == (
        401,
        "UNAUTHORIZED",
    )
    assert kalam_error(client.post("/v1/api/auth/refresh")) == (401, "UNAUTHORIZED")


def test_logout_revokes_the_tokens_and_clears_the_cookies(client):
    body = login(client).json()

    response = client.post("/v1/api/auth/logout", headers=bearer(body["access_token"]))

    assert response.status_code == 200
    assert all("Max-Age=0" in h for h in response.headers.get_list("set-cookie"))
    assert client.get("/v1/api/auth/me", headers=bearer(body["access_token"])).status_code == 401
    assert client.post("/v1/api/auth/refresh", headers=bearer(body["refresh_token"])).status_code == 401


def test_disabling_a_user_ends_their_tokens(client):
    body = login(client).json()
    client.patch("/api/admin/users/alice", json={"disabled": True}, headers={"X-API-Key": "test-api-key"})

    assert client.get("/v1/api/auth/me", headers=bearer(body["access_token"])).status_code == 401
    assert client.post("/v1/api/auth/refresh", headers=bearer(body["refresh_token"])).status_code == 401
    assert kalam_error(login(client)) == (401, "UNAUTHORIZED")


def test_brute_force_on_login_and_refresh_is_rate_limited(client):
    statuses = [login(client, password=f"guess-{n}").status_code for n in range(7)]
    limited = login(client)  # the right password waits too

    assert statuses == [401] * 5 + [429] * 2
    assert kalam_error(limited) == (429, "RATE_LIMIT_EXCEEDED")
    assert 1 <= int(limited.headers["Retry-After"]) <= 15

    refreshes = [
        client.post("/v1/api/auth/refresh", headers=bearer(f"forged.{n}.token")).status_code
        for n in range(12)
    ]
    assert refreshes == [401] * 10 + [429] * 2


def test_setup_and_status_answer_on_localhost_only(client, make_client, tmp_path, local_settings):
    fresh = make_client(
        local_settings.model_copy(update={"data_dir": tmp_path / "fresh"}), authenticated=False
    )
    here = local(fresh)
    assert here.get("/v1/api/auth/status").json() == {
        "needs_setup": True,
        "message": "Server requires initial setup: POST /v1/api/auth/setup.",
    }
    body = {"user": "dba", "password": "dba password", "root_password": "root password", "email": "a@b.c"}
    for remote in (fresh, local(fresh, "127.0.0.2"), local(fresh, "203.0.113.9")):
        for response in (remote.get("/v1/api/auth/status"), remote.post("/v1/api/auth/setup", json=body)):
            assert kalam_error(response) == (403, "PERMISSION_DENIED"), remote
    proxied = here.get("/v1/api/auth/status", headers={"X-Forwarded-For": "203.0.113.9"})
    assert kalam_error(proxied) == (403, "PERMISSION_DENIED")

    created = here.post("/v1/api/auth/setup", json=body)

    assert created.status_code == 200
    assert created.json()["user"]["user"] == "dba" and created.json()["user"]["role"] == "admin"
    assert "set-cookie" not in created.headers  # KalamDB: setup does not log in
    assert here.get("/v1/api/auth/status").json()["needs_setup"] is False
    assert kalam_error(here.post("/v1/api/auth/setup", json=body)) == (409, "CONFLICT")
    assert login(here, "dba", "dba password").status_code == 200
    assert here.post("/api/auth/login", json={"password": "root password"}).status_code == 200


def test_remote_setup_when_allowed(make_client, local_settings):
    remote = make_client(local_settings.model_copy(update={"allow_remote_setup": True}), authenticated=False)
    assert remote.get("/v1/api/auth/status").json()["needs_setup"] is True
    body = {"user": "admin", "password": "admin password"}
    assert remote.post("/v1/api/auth/setup", json=body).status_code == 200
    assert remote.post("/api/auth/login", json={"password": "admin password"}).status_code == 200


def test_me_renews_an_access_token_near_its_end(client):
    body = login(client).json()
    key = tokens.signing_key(resolve_session_secret(client.app.state.settings))
    claims = jwt.decode(body["access_token"], key, algorithms=["HS256"], issuer="karet")
    now = int(time.time())
    ending = jwt.encode({**claims, "iat": now - 800, "exp": now + 100}, key, algorithm="HS256")
    client.cookies.clear()

    fresh = client.get("/api/auth/me", headers=bearer(body["access_token"])).json()
    assert fresh == {"authenticated": True, "user": "alice", "role": "engineer"}

    renewed = client.get("/api/auth/me", headers=bearer(ending))
    assert renewed.status_code == 200
    assert renewed.json()["expires_in"] == tokens.ACCESS_TTL_SECONDS
    new = renewed.json()["access_token"]
    assert jwt.decode(new, key, algorithms=["HS256"], issuer="karet")["exp"] >= now + 890

    client.cookies.set(identity.ACCESS_COOKIE, ending)
    by_cookie = client.get("/api/auth/me")
    assert identity.ACCESS_COOKIE + "=" in by_cookie.headers["set-cookie"]

    expired = jwt.encode({**claims, "iat": now - 1000, "exp": now - 1}, key, algorithm="HS256")
    client.cookies.clear()
    client.cookies.set(identity.ACCESS_COOKIE, expired)
    assert client.get("/api/auth/me").json() == {"authenticated": False}  # idle too long: signed out
