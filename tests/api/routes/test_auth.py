"""Auth routes through the HTTP client: setup, login, logout, me, password change, throttle and sessions."""

import json
import stat
import time

import pytest
from fastapi import Depends
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from karet_api.deps import require_user
from karet_api.schemas.common import Ok
from karet_api.services.auth import admin, cookies
from karet_api.services.auth.secret import SECRET_DIR_NAME, SECRET_FILE_NAME, SESSION_SALT
from karet_defs.store.factory import build_stores
from tests.conftest import API_KEY

PASSWORD = "correct horse"
NEW_PASSWORD = "battery staple"
UNAUTHORIZED = {"error": "unauthorized", "message": "missing or invalid session"}


def _probe() -> Ok:
    return Ok()


def _with_probe(client):
    """Mount a tiny protected route on the client's app: the auth rule without depending on other routers."""
    client.app.add_api_route("/api/_probe", _probe, dependencies=[Depends(require_user)])
    return client


@pytest.fixture
def client(make_client, local_settings):
    return _with_probe(make_client(local_settings, authenticated=False))


def setup_admin(client, password=PASSWORD):
    response = client.post("/api/auth/setup", json={"password": password})
    assert (response.status_code, response.json()) == (200, {"ok": True})
    return response


def cookie_attributes(response):
    """The ``karet_session`` Set-Cookie header as (value, {attribute: value}) with Karet's spelling."""
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("karet_session=")]
    first, *rest = header.split("; ")
    attributes = dict(part.partition("=")[::2] for part in rest)
    return first.partition("=")[2], attributes


def secret_of(settings):
    return (settings.data_dir / SECRET_DIR_NAME / SECRET_FILE_NAME).read_text()


def error_of(response):
    return response.status_code, response.json()["error"]


def test_setup_creates_the_admin_once_and_logs_in(client, local_settings):
    assert client.get("/api/auth/setup").json() == {"needsSetup": True}
    assert client.get("/api/_probe").status_code == 401

    response = setup_admin(client)

    assert cookie_attributes(response)[0]
    assert client.get("/api/auth/setup").json() == {"needsSetup": False}
    assert client.get("/api/_probe").status_code == 200
    record = json.loads(build_stores(local_settings).pipelines.get(admin.ADMIN_KEY))
    assert sorted(record) == ["created_at", "password_hash", "version"]
    assert record["version"] == 1
    assert record["password_hash"].startswith("$argon2id$")
    assert record["created_at"].endswith("Z")

    again = client.post("/api/auth/setup", json={"password": NEW_PASSWORD})
    assert error_of(again) == (409, "already_initialized")


def test_setup_refuses_a_short_password(client):
    for body in ({"password": "short"}, {"password": "1234567"}, {"password": ""}, {}, None):
        response = client.post("/api/auth/setup", json=body)
        assert response.status_code == 422, body
        assert response.json() == {
            "error": "invalid_password",
            "message": "Password must be at least 8 characters",
        }
    assert client.get("/api/auth/setup").json() == {"needsSetup": True}


def test_setup_that_loses_the_race_gets_409(client, local_settings, monkeypatch):
    setup_admin(client)
    store = client.app.state.stores.pipelines
    before = store.get(admin.ADMIN_KEY)
    # The second setup saw no admin, as if both had checked at once: the conditional put must refuse it.
    monkeypatch.setattr(store, "head", lambda key: None)

    response = client.post("/api/auth/setup", json={"password": NEW_PASSWORD})

    assert error_of(response) == (409, "already_initialized")
    assert store.get(admin.ADMIN_KEY) == before


def test_login_sets_a_session_cookie(client):
    setup_admin(client)
    client.cookies.clear()

    wrong = client.post("/api/auth/login", json={"password": "not the password"})
    assert error_of(wrong) == (401, "invalid_credentials")
    assert "set-cookie" not in wrong.headers

    response = client.post("/api/auth/login", json={"password": PASSWORD})

    assert (response.status_code, response.json()) == (200, {"ok": True})
    value, attributes = cookie_attributes(response)
    assert value
    assert attributes == {"Path": "/", "HttpOnly": "", "SameSite": "Lax", "Max-Age": "604800"}
    assert client.get("/api/auth/me").json() == {"authenticated": True}
    assert client.get("/api/_probe").status_code == 200


def test_before_setup_login_fails_and_there_is_no_password_to_change(client):
    for body in (None, {}, {"password": ""}, {"password": None}, {"password": PASSWORD}):
        assert error_of(client.post("/api/auth/login", json=body)) == (401, "invalid_credentials"), body

    change = {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    response = client.patch("/api/auth/me", json=change, headers={"X-API-Key": API_KEY})
    assert error_of(response) == (404, "no_admin")


def test_cookies_are_secure_over_https(client):
    client.base_url = "https://testserver"
    _, attributes = cookie_attributes(setup_admin(client))
    assert "Secure" in attributes

    response = client.post("/api/auth/logout")
    assert response.headers["set-cookie"] == (
        "karet_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
    )


def test_logout_clears_the_cookie(client):
    setup_admin(client)
    assert client.get("/api/auth/me").status_code == 200

    response = client.post("/api/auth/logout")

    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert response.headers["set-cookie"] == "karet_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
    me = client.get("/api/auth/me")
    assert (me.status_code, me.json()) == (401, {"authenticated": False})
    assert client.get("/api/_probe").status_code == 401


API_KEY_CASES = [
    ({}, 401),
    ({"X-API-Key": API_KEY}, 200),
    ({"Authorization": f"Bearer {API_KEY}"}, 200),
    ({"Authorization": f"bearer {API_KEY}"}, 200),
    ({"X-API-Key": "wrong-key"}, 401),
    ({"Authorization": "Bearer wrong-key"}, 401),
    ({"Authorization": f"Basic {API_KEY}"}, 401),
]


def test_protected_routes_need_a_session_or_the_api_key(client):
    # One app for every case: building an app (and its Dagster instance) costs more than the checks.
    for headers, status in API_KEY_CASES:
        response = client.get("/api/_probe", headers=headers)
        assert response.status_code == status, headers
        if status == 401:
            assert response.json() == UNAUTHORIZED
        assert client.get("/api/auth/me", headers=headers).json() == {"authenticated": status == 200}


def test_tampered_or_malformed_cookies_are_not_a_session(client):
    value, _ = cookie_attributes(setup_admin(client))
    payload, _, rest = value.partition(".")
    head, _, signature = value.rpartition(".")
    forged = [
        # The signature's last base64 digit carries padding bits, so flip its first one.
        f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}",
        "eyJzdWIiOiJyb290In0." + rest,  # {"sub": "root"} under the real signature
        payload,
        "not-a-cookie",
        "..",
        "%C3%A9%00",
    ]
    client.cookies.clear()
    raw_headers = [f"karet_session={cookie}" for cookie in forged]
    raw_headers += ["karet_session=", 'karet_session="unterminated; x=1', "karet_session; =;;", "\x7f=\x7f"]
    for header in raw_headers:
        assert client.get("/api/_probe", headers={"Cookie": header}).status_code == 401, header
        me = client.get("/api/auth/me", headers={"Cookie": header})
        assert (me.status_code, me.json()) == (401, {"authenticated": False}), header
    assert client.get("/api/_probe", headers={"Cookie": f"karet_session={value}"}).status_code == 200


class _SignedAt(TimestampSigner):
    """A signer whose clock is ``age`` seconds behind (or ahead, when negative)."""

    age = 0

    def get_timestamp(self) -> int:
        return int(time.time()) - self.age


def _cookie_aged(secret, age, salt=SESSION_SALT, payload=None):
    signer = type("Signer", (_SignedAt,), {"age": age})
    return URLSafeTimedSerializer(secret, salt=salt, signer=signer).dumps(payload or {"sub": "admin"})


SESSION_CASES = {
    "fresh": (0, SESSION_SALT, None, 200),
    "almost-7-days": (cookies.SESSION_TTL_SECONDS - 60, SESSION_SALT, None, 200),
    "expired": (cookies.SESSION_TTL_SECONDS + 60, SESSION_SALT, None, 401),
    "future": (-3600, SESSION_SALT, None, 401),
    "other-salt": (0, "another-purpose", None, 401),
    "other-subject": (0, SESSION_SALT, {"sub": "someone"}, 401),
}


def test_session_lifetime_and_signature(client, local_settings):
    client.get("/api/auth/me")  # the first auth-needing request generates the secret
    secret = secret_of(local_settings)
    for name, (age, salt, payload, status) in SESSION_CASES.items():
        client.cookies.set(cookies.SESSION_COOKIE, _cookie_aged(secret, age, salt, payload))
        assert client.get("/api/_probe").status_code == status, name


def test_change_password(client):
    setup_admin(client)
    cookie = client.cookies.get(cookies.SESSION_COOKIE)
    client.cookies.clear()
    assert client.patch("/api/auth/me", json={}).json() == UNAUTHORIZED
    client.cookies.set(cookies.SESSION_COOKIE, cookie)

    cases = [
        ({"newPassword": NEW_PASSWORD}, (400, "missing_current_password")),
        ({"currentPassword": PASSWORD}, (400, "missing_new_password")),
        ({"currentPassword": PASSWORD, "newPassword": ""}, (400, "missing_new_password")),
        ({"currentPassword": PASSWORD, "newPassword": "short"}, (422, "invalid_password")),
        ({"currentPassword": "not the password", "newPassword": NEW_PASSWORD}, (401, "wrong_password")),
    ]
    for body, expected in cases:
        assert error_of(client.patch("/api/auth/me", json=body)) == expected, body

    response = client.patch("/api/auth/me", json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD})

    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert cookie_attributes(response)[1]["Max-Age"] == "604800"
    client.cookies.clear()
    old = client.post("/api/auth/login", json={"password": PASSWORD})
    assert error_of(old) == (401, "invalid_credentials")
    assert client.post("/api/auth/login", json={"password": NEW_PASSWORD}).status_code == 200


def test_login_rate_limit_per_client(client):
    setup_admin(client)
    client.cookies.clear()
    wrong = {"password": "not the password"}
    first_hop = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}

    for _ in range(5):
        assert client.post("/api/auth/login", json=wrong, headers=first_hop).status_code == 401
    limited = client.post("/api/auth/login", json=wrong, headers={"X-Forwarded-For": "203.0.113.7"})

    assert limited.status_code == 429
    assert limited.json() == {
        "error": "rate_limited",
        "message": "Too many login attempts; wait before retrying.",
    }
    assert 1 <= int(limited.headers["Retry-After"]) <= 15
    # Even the right password waits: the window counts attempts, not failures.
    assert client.post("/api/auth/login", json={"password": PASSWORD}, headers=first_hop).status_code == 429
    other = client.post("/api/auth/login", json=wrong, headers={"X-Forwarded-For": "198.51.100.1"})
    assert error_of(other) == (401, "invalid_credentials")


def test_successful_login_resets_the_client_window(client):
    setup_admin(client)
    client.cookies.clear()
    wrong = {"password": "not the password"}
    for _ in range(4):
        assert client.post("/api/auth/login", json=wrong).status_code == 401

    assert client.post("/api/auth/login", json={"password": PASSWORD}).status_code == 200

    for _ in range(5):
        assert client.post("/api/auth/login", json=wrong).status_code == 401
    assert client.post("/api/auth/login", json=wrong).status_code == 429


def test_too_many_concurrent_verifications_is_server_busy(client):
    limiter = client.app.state.auth.limiter
    with limiter.verification_slot(), limiter.verification_slot():
        response = client.post("/api/auth/login", json={"password": PASSWORD})

    assert response.status_code == 429
    assert response.json() == {
        "error": "server_busy",
        "message": "Too many concurrent login attempts; try again shortly.",
    }
    assert response.headers["Retry-After"] == "2"


def test_generated_secret_is_kept_and_shared_by_the_next_app(client, make_client, local_settings):
    setup_admin(client)
    cookie = client.cookies.get(cookies.SESSION_COOKIE)
    path = local_settings.data_dir / SECRET_DIR_NAME / SECRET_FILE_NAME
    secret = path.read_text()
    assert len(secret) >= 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    restarted = _with_probe(make_client(local_settings, authenticated=False))
    restarted.cookies.set(cookies.SESSION_COOKIE, cookie)

    assert restarted.get("/api/_probe").status_code == 200
    assert path.read_text() == secret


def test_configured_secret_is_used_and_nothing_is_generated(make_client, local_settings):
    settings = local_settings.model_copy(update={"session_secret": "configured-secret-" + "x" * 40})
    client = _with_probe(make_client(settings, authenticated=False))
    client.cookies.set(cookies.SESSION_COOKIE, _cookie_aged(settings.session_secret, 0))

    assert client.get("/api/_probe").status_code == 200
    assert not (local_settings.data_dir / SECRET_DIR_NAME).exists()


class TestOnS3:
    @pytest.fixture
    def s3_client(self, make_client, s3_settings):
        settings = s3_settings.model_copy(update={"session_secret": "s3-test-secret-" + "y" * 40})
        return _with_probe(make_client(settings, authenticated=False))

    def test_setup_login_and_me(self, s3_client, s3_settings):
        assert s3_client.get("/api/auth/setup").json() == {"needsSetup": True}
        setup_admin(s3_client)
        assert s3_client.get("/api/auth/setup").json() == {"needsSetup": False}
        assert error_of(s3_client.post("/api/auth/setup", json={"password": PASSWORD})) == (
            409,
            "already_initialized",
        )
        record = json.loads(s3_client.app.state.stores.pipelines.get(admin.ADMIN_KEY))
        assert record["version"] == 1

        s3_client.cookies.clear()
        assert s3_client.get("/api/auth/me").status_code == 401
        response = s3_client.post("/api/auth/login", json={"password": PASSWORD})
        assert response.status_code == 200
        assert cookie_attributes(response)[1]["Max-Age"] == "604800"
        assert s3_client.get("/api/auth/me").json() == {"authenticated": True}
        assert s3_client.get("/api/_probe").status_code == 200

    def test_without_a_session_secret_every_session_check_is_a_500(self, make_client, s3_settings):
        client = _with_probe(make_client(s3_settings, authenticated=False))
        misconfigured = {"error": "server_misconfigured", "message": "KARET_SESSION_SECRET is not set"}

        for response in (
            client.get("/api/_probe"),
            client.get("/api/auth/me"),
            client.post("/api/auth/login", json={"password": PASSWORD}),
            client.post("/api/auth/setup", json={"password": PASSWORD}),
        ):
            assert (response.status_code, response.json()) == (500, misconfigured)
        assert client.get("/api/auth/setup").json() == {"needsSetup": True}
        # The API key needs no session secret, so machine clients keep working.
        assert client.get("/api/_probe", headers={"X-API-Key": API_KEY}).status_code == 200


def test_openapi_documents_the_auth_errors(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/auth/login"]["post"]["responses"]) >= {"200", "401", "429", "500"}
    assert set(paths["/api/auth/me"]["patch"]["responses"]) >= {"200", "400", "401", "404", "422", "429"}
    assert set(paths["/api/auth/setup"]["post"]["responses"]) >= {"200", "409", "422"}
    assert "401" in paths["/api/auth/me"]["get"]["responses"]
