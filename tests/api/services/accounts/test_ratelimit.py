"""Rate limits over ``limits``: in memory and in Redis (shared by two apps), thread safety, and the 429s of
writes and SQL in each prefix's envelope."""

import socket
import threading
import uuid

import pytest

from karet_api.services.accounts import ratelimit
from karet_defs.errors import RateLimited
from karet_defs.settings import Settings
from tests.factories import make_user, token_pair_for

SHARES_DAGSTER_INSTANCE = True
REDIS_URL = "redis://127.0.0.1:6379"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _storages() -> list[object]:
    redis = pytest.param(
        REDIS_URL,
        marks=pytest.mark.skipif(
            not _redis_up(), reason="needs Redis on 127.0.0.1:6379 (KARET_RATE_LIMIT_STORAGE)"
        ),
    )
    return ["memory://", redis]


@pytest.mark.parametrize("storage", _storages())
def test_writes_are_limited_per_user_and_per_address(storage):
    settings = Settings(rate_limit_storage=storage, rate_limit_writes="3 per minute")
    limiter = ratelimit.Limiter(settings)
    user, address = f"u-{uuid.uuid4().hex}", f"198.51.100.{uuid.uuid4().int % 250}"

    for _ in range(3):
        limiter.hit_writes(address, user)
    with pytest.raises(RateLimited) as raised:
        limiter.hit_writes(f"{address}0", user)  # another address, same user

    assert 1 <= raised.value.retry_after <= 60
    with pytest.raises(RateLimited):
        limiter.hit_writes(address, f"{user}-other")  # another user, same address
    for _ in range(10):
        limiter.hit_writes(address, None)  # the service identity is exempt


@pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379 (KARET_RATE_LIMIT_STORAGE)")
def test_two_processes_share_the_redis_windows():
    settings = Settings(rate_limit_storage=REDIS_URL, rate_limit_login="4 per minute")
    first, second = ratelimit.Limiter(settings), ratelimit.Limiter(settings)
    address = f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4().hex}"

    for limiter in (first, second, first, second):
        limiter.hit_login(address)
    with pytest.raises(RateLimited, match="Too many login attempts"):
        first.hit_login(address)
    second.clear_login(address)
    first.hit_login(address)


def test_the_memory_limiter_is_thread_safe():
    limiter = ratelimit.Limiter(Settings(rate_limit_sql="50 per minute"))
    outcomes: list[bool] = []

    def attempt() -> None:
        for _ in range(20):
            try:
                limiter.hit_sql("192.0.2.1", "same")
                outcomes.append(True)
            except RateLimited:
                outcomes.append(False)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count(True) == 50


def test_a_bad_limit_notation_is_refused_at_startup():
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limit_writes="often")


def test_write_and_sql_limits_answer_429_in_each_envelope(make_client, local_settings):
    settings = local_settings.model_copy(
        update={"rate_limit_writes": "2 per minute", "rate_limit_sql": "1 per minute"}
    )
    client = make_client(settings, authenticated=False)
    make_user(client, "wes", "engineer")
    headers = {"Authorization": f"Bearer {token_pair_for(client, 'wes').access_token}"}

    statuses = [
        client.post("/api/pipelines", json={"slug": f"p{n}"}, headers=headers).status_code for n in range(3)
    ]

    assert statuses[:2] != [429, 429] and statuses[2] == 429
    limited = client.post("/api/pipelines", json={"slug": "p9"}, headers=headers)
    assert limited.json() == {"error": "rate_limited", "message": "Too many changes; wait before retrying."}
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get("/api/pipelines", headers=headers).status_code == 200  # reads are not writes

    sql = {"sql": "SELECT 1"}
    assert client.post("/v1/api/sql", json=sql, headers=headers).status_code == 200
    refused = client.post("/v1/api/sql", json=sql, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert "Retry-After" in refused.headers


def test_sql_sent_by_post_counts_against_the_sql_limit_not_the_write_limit(make_client, local_settings):
    settings = local_settings.model_copy(
        update={"rate_limit_writes": "1 per minute", "rate_limit_sql": "2 per minute"}
    )
    client = make_client(settings, authenticated=False)
    make_user(client, "wes", "engineer")
    headers = {"Authorization": f"Bearer {token_pair_for(client, 'wes').access_token}"}
    assert client.post("/api/pipelines", json={"slug": "p1"}, headers=headers).status_code == 200

    queries = [
        client.post("/api/p/p1/query", json={"sql": "SELECT 1 AS one"}, headers=headers).status_code
        for _ in range(3)
    ]

    # The one write allowed went on the pipeline; queries are reads sent by POST, under their own limit.
    assert queries == [200, 200, 429]
    assert client.post("/api/pipelines", json={"slug": "p2"}, headers=headers).status_code == 429
